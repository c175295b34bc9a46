"""The layout shows the pipeline: stage folders exist, and no module imports itself back."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bench", "data_builders", "leaderboard")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, known: set[str]) -> set[str]:
    """Project modules imported anywhere in ``path`` (function-level imports included)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name:
                found.add(name)
    return found


def import_graph() -> dict[str, set[str]]:
    files = [p for package in PACKAGES for p in (ROOT / package).rglob("*.py")]
    known = {_module_name(p) for p in files}
    graph = {}
    for path in files:
        name = _module_name(path)
        # A module importing its own package's __init__ is not a cycle through code.
        parents = {name.rsplit(".", i)[0] for i in range(1, name.count(".") + 1)}
        graph[name] = _imports(path, known) - {name} - parents
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for child in sorted(graph.get(node, ())):
            if state.get(child) == 1:
                return [*stack[stack.index(child):], child]
            if child not in state and (cycle := visit(child)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycles():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def private_imports(graph: dict[str, set[str]]) -> list[str]:
    """``importer -> module`` for each import of a ``_private`` module from outside the
    package that holds it (the package and its sub-packages may import it)."""
    found = []
    for importer, imported in sorted(graph.items()):
        for name in sorted(imported):
            package, _, leaf = name.rpartition(".")
            private = leaf.startswith("_") and not leaf.startswith("__")
            if private and not (importer + ".").startswith(package + "."):
                found.append(f"{importer} -> {name}")
    return found


def test_no_module_imports_a_private_module_of_another_package():
    assert private_imports(import_graph()) == []


def test_private_import_finder_finds_one():
    graph = {"a.b.user": {"a.c._impl"}, "a.c.d.user": {"a.c._impl"}, "a.c": {"a.c._impl"},
             "a.b": {"a.c.__main__"}}
    assert private_imports(graph) == ["a.b.user -> a.c._impl"]


def test_stage_folders_exist():
    for folder in ("prepare", "compressors", "harness", "lmeval", "training"):
        assert (ROOT / "bench" / folder / "__init__.py").is_file(), folder
    # Entry points (python -m bench.X) and the vocabulary every stage shares; stage code
    # belongs in the stage folders.
    top_level = sorted(p.name for p in (ROOT / "bench").glob("*.py"))
    assert len(top_level) <= 15, top_level


# What bench.substrate implements once: nobody else writes atomically, hashes files, writes
# Parquet, formats one-line errors or --help by hand.
SUBSTRATE = ROOT / "bench" / "substrate"
SUBSTRATE_CALLS = {("tempfile", "mkstemp"), ("tempfile", "mkdtemp"), ("os", "fsync"),
                   ("pq", "write_table"), ("pq", "ParquetWriter")}
SUBSTRATE_FUNCTIONS = {"atomic_directory", "atomic_path", "atomic_write_bytes",
                       "atomic_write_json", "atomic_write_text", "write_atomic", "sha256_file",
                       "sha256_bytes", "write_parquet", "write_manifest", "verify_folder",
                       "format_input_error"}


def substrate_copies(root: Path) -> list[str]:
    """``file:line: what`` for each re-implementation of the substrate under ``root``."""
    found = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            if (root / "bench" / "substrate") in path.parents:
                continue
            where = path.relative_to(root).as_posix()
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                call = node.func if isinstance(node, ast.Call) else None
                if (isinstance(call, ast.Attribute) and isinstance(call.value, ast.Name)
                        and (call.value.id, call.attr) in SUBSTRATE_CALLS):
                    found.append(f"{where}:{call.lineno}: {call.value.id}.{call.attr}()")
                elif (isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
                      and node.name in SUBSTRATE_FUNCTIONS):
                    found.append(f"{where}:{node.lineno}: def {node.name}")
                elif isinstance(node, ast.ClassDef) and any(
                        ast.unparse(base).endswith("HelpFormatter") for base in node.bases):
                    found.append(f"{where}:{node.lineno}: class {node.name}")
    return found


def test_the_substrate_is_implemented_once():
    assert SUBSTRATE.is_dir()
    assert substrate_copies(ROOT) == []


def probed_capabilities(root: Path) -> list[str]:
    """``getattr(compressor, ...)`` calls outside the compressors: capabilities are declared
    at registration, not probed on instances."""
    found = []
    for path in sorted(root.glob("*/**/*.py")):
        relative = path.relative_to(root)
        if relative.parts[0] not in PACKAGES or relative.parts[:2] == ("bench", "compressors"):
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id in ("getattr", "hasattr") and node.args
                    and "compressor" in ast.unparse(node.args[0])):
                found.append(f"{relative}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_no_capability_is_probed_on_a_compressor():
    assert probed_capabilities(ROOT) == []


def test_the_probe_finder_finds_one(tmp_path: Path):
    module = tmp_path / "bench" / "harness" / "x.py"
    module.parent.mkdir(parents=True)
    module.write_text("def f(compressor):\n    return getattr(compressor, 'cacheable', True)\n")
    assert probed_capabilities(tmp_path) == [
        "bench/harness/x.py:2: getattr(compressor, 'cacheable', True)"]
