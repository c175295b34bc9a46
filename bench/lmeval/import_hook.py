"""Calling back right after a module is imported, without importing it first."""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

__all__ = ["call_after_import"]


def call_after_import(module_name: str, then: Callable[[ModuleType], None]) -> None:
    """Call ``then(module)`` now if ``module_name`` is imported, else right after its import."""
    module = sys.modules.get(module_name)
    if module is not None:
        then(module)
    else:
        sys.meta_path.insert(0, _CallAfterImport(module_name, then))


class _CallAfterImport(importlib.abc.MetaPathFinder):
    """Finds one module and gives it a loader that calls back after executing it; leaves
    once that happened (a spec asked for without an import, as ``python -m`` first does for
    a package, does not count)."""

    def __init__(self, module_name: str, then: Callable[[ModuleType], None]) -> None:
        self._module_name = module_name
        self._then = then
        self._called = False

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname != self._module_name:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _CallingLoader(spec.loader, self._executed)
        return spec

    def _executed(self, module: ModuleType) -> None:
        if self._called:
            return
        self._called = True
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        self._then(module)


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
