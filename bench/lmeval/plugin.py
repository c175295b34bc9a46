"""Makes the ``compressed*`` models and the ``compressed_*`` tasks visible to lm-eval.

lm-eval 0.4.13 has no plug-in discovery. :func:`register` adds our models to lm-eval's model
registry as lazy ``module:Class`` entries, the way lm-eval lists its own built-ins, so a model's
module (torch, transformers, the compressors) is imported only when that model is asked for;
and it adds the project's task folder to every ``TaskManager`` as soon as ``lm_eval.tasks`` is
imported. :func:`install_autoload` is run by the ``.pth`` file that the wheel installs: for a
process started as ``lm_eval``/``lm-eval`` or ``python -m lm_eval`` (or with
``COMPRESSBENCH_LM_EVAL=1``) it calls :func:`register` right after ``lm_eval._cli`` (the CLI package
that ``lm_eval.__main__`` imports first) has been imported, before the CLI parses its arguments.
``COMPRESSBENCH_LM_EVAL=0`` turns the autoload off, even for ``lm_eval``.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

AUTOLOAD_ENV = "COMPRESSBENCH_LM_EVAL"
_CLI_MODULE = "lm_eval._cli"
_TASKS_MODULE = "lm_eval.tasks"
_LM_EVAL_MODULES = ("lm_eval", "lm_eval.__main__")
MODELS = {
    "compressed": "bench.lmeval.compressed_model:CompressedLM",
    "compressed_reader": "bench.lmeval.reader_model:CompressedReaderLM",
    "compressed_completions": "bench.lmeval.api_models:CompressedCompletionsLM",
    "compressed_chat_completions": "bench.lmeval.api_models:CompressedChatCompletionsLM",
}
_registered = False


def register() -> None:
    """Register the ``compressed*`` models (lazily) and the task folder."""
    global _registered
    if _registered:
        return
    import lm_eval.models  # noqa: F401  (built-ins first: their lazy entries are added once)
    from lm_eval.api.registry import model_registry

    for name, target in MODELS.items():
        if name not in model_registry:  # already there when its module was imported first
            model_registry.register(name, target=target)
    _after_import(_TASKS_MODULE, _add_task_folder)
    _registered = True


def _add_task_folder(tasks_module: ModuleType) -> None:
    manager_class: Any = tasks_module.TaskManager
    original_init = manager_class.__init__
    folder = str(task_include_path())

    def init_with_project_tasks(self: Any, *args: Any, include_path: Any = None,
                                **kwargs: Any) -> None:
        paths: list[Any] = [] if include_path is None else (
            list(include_path) if isinstance(include_path, (list, tuple)) else [include_path])
        # A user's own folder comes first so that its tasks override ours, as lm-eval documents.
        original_init(self, *args, include_path=[*paths, folder], **kwargs)

    manager_class.__init__ = init_with_project_tasks


def _after_import(module_name: str, then: Callable[[ModuleType], None]) -> None:
    """Call ``then(module)`` now if ``module_name`` is imported, else right after its import."""
    module = sys.modules.get(module_name)
    if module is not None:
        then(module)
    else:
        sys.meta_path.insert(0, _CallAfterImport(module_name, then))


class _CallAfterImport(importlib.abc.MetaPathFinder):
    """Finds one module once and gives it a loader that calls back after executing it."""

    def __init__(self, module_name: str, then: Callable[[ModuleType], None]) -> None:
        self._module_name = module_name
        self._then = then

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname != self._module_name:
            return None
        sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _CallingLoader(spec.loader, self._then)
        return spec


class _CallingLoader(importlib.abc.Loader):
    def __init__(self, inner: Any, then: Callable[[ModuleType], None]) -> None:
        self._inner = inner
        self._then = then

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        created: ModuleType | None = self._inner.create_module(spec)
        return created

    def exec_module(self, module: ModuleType) -> None:
        self._inner.exec_module(module)
        self._then(module)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def install_autoload() -> None:
    """Called from the installed ``.pth`` file; cheap and silent for every other program."""
    switch = os.environ.get(AUTOLOAD_ENV)
    if switch == "0":
        return
    program = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    if program in ("lm_eval", "lm-eval") or _running_lm_eval_module() or switch == "1":
        _after_import(_CLI_MODULE, _register_for_cli)


def _running_lm_eval_module() -> bool:
    """``python -m lm_eval`` (also as started by torchrun or accelerate launch).

    While ``.pth`` files run, ``sys.argv[0]`` is only ``"-m"``; ``sys.orig_argv`` still holds
    the interpreter's options and the module name.
    """
    arguments = iter(list(getattr(sys, "orig_argv", []))[1:])
    for argument in arguments:
        if argument in ("-W", "-X", "--check-hash-based-pycs"):
            next(arguments, None)  # the option's value
        elif argument == "-m":
            return next(arguments, "") in _LM_EVAL_MODULES
        elif argument.startswith("-m"):
            return argument[2:] in _LM_EVAL_MODULES
        elif argument == "-c" or not argument.startswith("-"):
            return False  # a command or a script, not a module
    return False


def _register_for_cli(_cli: ModuleType) -> None:
    from bench.lmeval.cli_errors import install_excepthook

    register()
    install_excepthook()


def task_include_path() -> Path:
    """The folder to pass as ``--include_path`` where autoloading is not wanted."""
    from bench.lmeval.task_functions import task_folder

    return task_folder()
