"""Calling back after a module's import, as the plug-in does for lm-eval's packages."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from bench.lmeval.import_hook import call_after_import

NAME = "compressbench_hooked_probe"


@pytest.fixture()
def module_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / f"{NAME}.py").write_text("VALUE = 7\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "meta_path", list(sys.meta_path))
    monkeypatch.delitem(sys.modules, NAME, raising=False)
    return tmp_path


@pytest.mark.usefixtures("module_folder")
def test_the_callback_sees_the_executed_module_once():
    seen: list[ModuleType] = []
    call_after_import(NAME, seen.append)
    module = importlib.import_module(NAME)
    importlib.reload(module)
    assert [m.VALUE for m in seen] == [7]
    assert not any(type(finder).__module__ == "bench.lmeval.import_hook"
                   for finder in sys.meta_path)


@pytest.mark.usefixtures("module_folder")
def test_a_spec_asked_for_before_the_import_does_not_use_up_the_callback():
    seen: list[ModuleType] = []
    call_after_import(NAME, seen.append)
    assert importlib.util.find_spec(NAME) is not None  # what ``python -m package`` does first
    assert seen == []
    importlib.import_module(NAME)
    assert [m.__name__ for m in seen] == [NAME]


@pytest.mark.usefixtures("module_folder")
def test_an_imported_module_is_called_back_at_once():
    module = importlib.import_module(NAME)
    seen: list[ModuleType] = []
    call_after_import(NAME, seen.append)
    assert seen == [module]
