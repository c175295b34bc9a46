"""Makes the ``compressed`` models and the ``compressed_*`` tasks visible to lm-eval.

lm-eval 0.4.13 has no plug-in discovery. :func:`register` imports lm-eval's own models
first (so ``--model hf`` stays available), registers ours, and adds the project's task folder
to every ``TaskManager``. :func:`install_autoload` is run by the ``.pth`` file that the wheel
installs: for a process started as ``lm_eval``/``lm-eval`` (or with
``COMPRESSBENCH_LM_EVAL=1``, needed under ``python -m lm_eval``) it calls :func:`register`
right after ``lm_eval._cli`` (the CLI package that ``lm_eval.__main__`` imports first) has been
imported, before the CLI parses its arguments.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

AUTOLOAD_ENV = "COMPRESSBENCH_LM_EVAL"
_TRIGGER_MODULE = "lm_eval._cli"
_registered = False


def register() -> None:
    """Register the ``compressed`` and ``compressed_reader`` models and the task folder."""
    global _registered
    if _registered:
        return
    import lm_eval.models  # noqa: F401  (built-ins first, or `--model hf` disappears)
    from lm_eval.tasks import TaskManager

    import bench.lmeval.compressed_model
    import bench.lmeval.reader_model  # noqa: F401  (registers "compressed_reader")
    from bench.lmeval.task_functions import task_folder

    original_init = TaskManager.__init__
    folder = str(task_folder())

    def init_with_project_tasks(self: Any, *args: Any, include_path: Any = None,
                                **kwargs: Any) -> None:
        paths: list[Any] = [] if include_path is None else (
            list(include_path) if isinstance(include_path, (list, tuple)) else [include_path])
        # A user's own folder comes first so that its tasks override ours, as lm-eval documents.
        original_init(self, *args, include_path=[*paths, folder], **kwargs)

    TaskManager.__init__ = init_with_project_tasks  # type: ignore[method-assign]
    _registered = True


class _RegisterAfterImport(importlib.abc.MetaPathFinder):
    """Finds the CLI package once and gives it a loader that calls :func:`register` after it."""

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname != _TRIGGER_MODULE:
            return None
        sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _RegisteringLoader(spec.loader)
        return spec


class _RegisteringLoader(importlib.abc.Loader):
    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        created: ModuleType | None = self._inner.create_module(spec)
        return created

    def exec_module(self, module: ModuleType) -> None:
        self._inner.exec_module(module)
        register()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def install_autoload() -> None:
    """Called from the installed ``.pth`` file; cheap and silent for every other program."""
    program = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    if program in ("lm_eval", "lm-eval") or os.environ.get(AUTOLOAD_ENV) == "1":
        sys.meta_path.insert(0, _RegisterAfterImport())


def task_include_path() -> Path:
    """The folder to pass as ``--include_path`` where autoloading is not wanted."""
    from bench.lmeval.task_functions import task_folder

    return task_folder()
