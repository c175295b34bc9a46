"""lm-eval's internals are used in one module, which refuses any lm-eval but the supported one."""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import re
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

import bench.lmeval
from bench.__main__ import main as bench_main
from bench.lmeval import adapter, plugin
from bench.substrate.errors import InputError

ROOT = Path(__file__).resolve().parents[3]
ADAPTER = ROOT / "bench" / "lmeval" / "adapter.py"
SCANNED = ("bench", "data_builders", "leaderboard", "tasks", "benchmarks")
# Folders whose modules handle lm-eval's objects (models, requests) without importing lm-eval.
FACING_FOLDERS = (ROOT / "bench" / "lmeval", ROOT / "bench" / "harness")
# Public attributes that are lm-eval's request and hook plumbing rather than its API (only
# ``cache_hook`` is too rare a word to be looked for in strings as well).
PLUMBING = frozenset({"args", "arguments", "cache_hook"})
PLUMBING_STRINGS = frozenset({"cache_hook"})
PRIVATE_MODULE = re.compile(r"\blm_eval(\.\w+)*\._(?!_)\w*")


def _pretend_installed(monkeypatch: pytest.MonkeyPatch, installed: str | None) -> None:
    """Make ``lm_eval``'s installed version read ``installed`` (None: not installed)."""
    real_version = importlib.metadata.version

    def version(distribution: str) -> str:
        if distribution != "lm_eval":
            return real_version(distribution)
        if installed is None:
            raise importlib.metadata.PackageNotFoundError(distribution)
        return installed

    monkeypatch.setattr(importlib.metadata, "version", version)


def _fresh_adapter(monkeypatch: pytest.MonkeyPatch, installed: str | None) -> ModuleType:
    """The adapter module executed anew while lm-eval ``installed`` is installed; the imported
    module is left as it is."""
    _pretend_installed(monkeypatch, installed)
    spec = importlib.util.spec_from_file_location("adapter_under_test", ADAPTER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    return module


def test_the_supported_version_is_the_pinned_one(monkeypatch: pytest.MonkeyPatch):
    pinned = re.search(r'"lm-eval\[api\]==([^"]+)"', (ROOT / "pyproject.toml").read_text())
    assert pinned is not None
    assert pinned.group(1) == adapter.SUPPORTED_VERSION
    assert pinned.group(1) == _fresh_adapter(monkeypatch, pinned.group(1)).SUPPORTED_VERSION


def test_another_lm_eval_version_is_refused_naming_both(monkeypatch: pytest.MonkeyPatch):
    with pytest.raises(InputError) as caught:
        _fresh_adapter(monkeypatch, "0.4.14")
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(
        f"lm-eval 0.4.14 is installed; compressbench supports lm-eval "
        f"{adapter.SUPPORTED_VERSION} only")
    assert f"lm-eval[api]=={adapter.SUPPORTED_VERSION}" in message


def test_a_missing_lm_eval_is_refused_naming_the_supported_version(
        monkeypatch: pytest.MonkeyPatch):
    with pytest.raises(InputError, match=rf"^lm-eval is not installed; compressbench supports "
                                         rf"lm-eval {re.escape(adapter.SUPPORTED_VERSION)}"):
        _fresh_adapter(monkeypatch, None)


@pytest.fixture()
def adapter_not_imported(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The next import of the adapter runs its version check again (restored afterwards)."""
    monkeypatch.delitem(sys.modules, "bench.lmeval.adapter")
    monkeypatch.delattr(bench.lmeval, "adapter")
    yield


@pytest.mark.usefixtures("adapter_not_imported")
def test_eval_under_another_lm_eval_is_one_line_and_exit_2(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    _pretend_installed(monkeypatch, "0.3.0")
    monkeypatch.delenv("COMPRESSBENCH_DEBUG", raising=False)
    assert bench_main(["eval", "--model", "hf", "--tasks", "compressed_squad"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("error: lm-eval 0.3.0 is installed; compressbench supports lm-eval "
                          f"{adapter.SUPPORTED_VERSION} only")


@pytest.mark.usefixtures("adapter_not_imported")
def test_the_autoload_under_another_lm_eval_says_so_and_leaves_lm_eval_alone(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    _pretend_installed(monkeypatch, "0.3.0")
    monkeypatch.setattr(sys, "meta_path", list(sys.meta_path))
    hooks = len(sys.meta_path)
    plugin._register_after_cli_import(importlib.import_module("lm_eval"))
    assert capsys.readouterr().err == (
        "compressbench: lm-eval plug-in not loaded: lm-eval 0.3.0 is installed; compressbench "
        f"supports lm-eval {adapter.SUPPORTED_VERSION} only; install it with pip install "
        f"'lm-eval[api]=={adapter.SUPPORTED_VERSION}'\n")
    assert len(sys.meta_path) == hooks


# ---- the rest of the project keeps to lm-eval's public API ----


def lm_eval_private_names() -> frozenset[str]:
    """Every ``_name`` (not ``__dunder__``) that the installed lm-eval's source uses as an
    attribute or defines as a method."""
    spec = importlib.util.find_spec("lm_eval")
    assert spec is not None and spec.submodule_search_locations
    names: set[str] = set()
    for folder in spec.submodule_search_locations:
        for path in Path(folder).rglob("*.py"):
            with warnings.catch_warnings():  # invalid escapes in lm-eval's own strings
                warnings.simplefilter("ignore", (SyntaxWarning, DeprecationWarning))
                tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if isinstance(node, ast.Attribute):
                    names.add(node.attr)
                elif isinstance(node, ast.ClassDef):
                    names.update(item.name for item in node.body
                                 if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef))
    return frozenset(name for name in names if _private(name))


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _private_lm_eval_module(name: str) -> bool:
    return name.split(".")[0] == "lm_eval" and any(_private(part) for part in name.split("."))


def _docstrings(tree: ast.Module) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            first = node.body[0] if node.body else None
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def _imports_lm_eval(tree: ast.Module) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            modules = [node.module or ""]
        else:
            continue
        if any(m.split(".")[0] == "lm_eval" or m == "bench.lmeval.adapter" for m in modules):
            return True
        if isinstance(node, ast.ImportFrom) and node.module == "bench.lmeval" and any(
                alias.name == "adapter" for alias in node.names):
            return True
    return False


class _OwnAttributes(ast.NodeVisitor):
    """Marks ``self.X`` inside classes without base classes: those objects are the
    project's own, never lm-eval's."""

    def __init__(self) -> None:
        self.own: set[int] = set()
        self._plain_class = False

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        outer, self._plain_class = self._plain_class, not node.bases
        self.generic_visit(node)
        self._plain_class = outer

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if self._plain_class and isinstance(node.value, ast.Name) and node.value.id == "self":
            self.own.add(id(node))
        self.generic_visit(node)


def lm_eval_internals(source: str, where: str, private: frozenset[str],
                      handles_lm_eval_objects: bool = False) -> list[str]:
    """Where ``source`` uses lm-eval beyond its public API: imports of private modules or
    names, and (in a module that handles lm-eval objects) lm-eval's private attributes and
    methods and its request plumbing."""
    tree = ast.parse(source)
    found: list[str] = []
    docstrings = _docstrings(tree)
    facing = handles_lm_eval_objects or _imports_lm_eval(tree)
    own = _OwnAttributes()
    own.visit(tree)
    for node in ast.walk(tree):
        line = f"{where}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import):
            found += [f"{line}: imports {a.name}" for a in node.names
                      if _private_lm_eval_module(a.name)]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("lm_eval"):
            module = node.module or ""
            found += [f"{line}: imports {module}.{a.name}" for a in node.names
                      if _private_lm_eval_module(f"{module}.{a.name}")]
        elif (isinstance(node, ast.Constant) and isinstance(node.value, str)
              and id(node) not in docstrings
              and (named := PRIVATE_MODULE.search(node.value)) is not None):
            found.append(f"{line}: names {named.group(0)}")
        elif not facing:
            continue
        elif (isinstance(node, ast.Attribute) and id(node) not in own.own
              and (node.attr in private or node.attr in PLUMBING)):
            found.append(f"{line}: .{node.attr}")
        elif isinstance(node, ast.ClassDef) and node.bases:
            found += [f"{where}:{item.lineno}: overrides {item.name}" for item in node.body
                      if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)
                      and item.name in private]
        elif (isinstance(node, ast.Constant) and isinstance(node.value, str)
              and (node.value in private or node.value in PLUMBING_STRINGS)):
            found.append(f"{line}: names {node.value!r}")
    return found


@pytest.fixture(scope="module")
def private_names() -> frozenset[str]:
    return lm_eval_private_names()


def test_no_module_but_the_adapter_uses_lm_eval_internals(private_names: frozenset[str]):
    found = []
    for folder in SCANNED:
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path == ADAPTER:
                continue
            facing = any(path.is_relative_to(f) for f in FACING_FOLDERS)
            found += lm_eval_internals(path.read_text(encoding="utf-8"),
                                       str(path.relative_to(ROOT)), private_names, facing)
    assert found == [], ("lm-eval internals outside bench/lmeval/adapter.py (add a function "
                         "there):\n" + "\n".join(found))


@pytest.mark.parametrize("snippet", [
    "import lm_eval._cli\n",
    "from lm_eval._cli.harness import HarnessCLI\n",
    "from lm_eval.models import _private_helper\n",
    "HOOKED = 'lm_eval._cli'\n",
    "import lm_eval\ndef f(model):\n    model._rank = 0\n",
    "from lm_eval.models.huggingface import HFLM\n"
    "class M(HFLM):\n    def _model_generate(self, *a):\n"
    "        return super()._model_generate(*a)\n",
    "from lm_eval.api.model import LM\ndef f(request):\n    return request.args[0]\n",
    "import lm_eval\ndef f(model):\n    return getattr(model, 'cache_hook')\n",
])
def test_the_scan_finds_an_internal_that_is_added(private_names: frozenset[str], snippet: str):
    assert lm_eval_internals(snippet, "new.py", private_names) != []


def test_the_scan_leaves_the_projects_own_names_alone(private_names: frozenset[str]):
    own = ("\"\"\"Uses ``lm_eval._cli`` through the adapter.\"\"\"\nimport lm_eval\n"
           "class Clock:\n    def __init__(self):\n        self._name = 'x'\n"
           "def f(parser):\n    return parser._parser\n")
    assert "_name" in private_names
    assert lm_eval_internals(own, "own.py", private_names) == ["own.py:7: ._parser"]
    assert lm_eval_internals("def f(parser):\n    return parser._parser\n", "other.py",
                             private_names) == []
