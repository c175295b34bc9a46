"""The task files in ``tasks/`` are those ``python -m bench tasks --write`` writes."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.__main__ import main
from bench.lmeval.task_files import task_files, write_task_files
from bench.lmeval.task_functions import task_folder


def test_the_committed_task_files_are_those_the_specs_write():
    committed = {path.name: path.read_text(encoding="utf-8")
                 for path in task_folder().glob("*.yaml")}
    assert committed == task_files(), (
        "tasks/*.yaml differ from bench/specs: run python -m bench tasks --write")


def test_writing_replaces_a_changed_file_and_removes_one_no_spec_writes(tmp_path: Path):
    (tmp_path / "compressed_squad.yaml").write_text("task: edited\n", encoding="utf-8")
    (tmp_path / "compressed_gone.yaml").write_text("task: compressed_gone\n", encoding="utf-8")
    (tmp_path / "utils.py").write_text("# kept\n", encoding="utf-8")
    changed = write_task_files(tmp_path)
    assert "compressed_squad.yaml" in changed and "compressed_gone.yaml" in changed
    written = {path.name: path.read_text(encoding="utf-8") for path in tmp_path.glob("*.yaml")}
    assert written == task_files()
    assert (tmp_path / "utils.py").read_text(encoding="utf-8") == "# kept\n"
    assert write_task_files(tmp_path) == []


def test_the_tasks_command_writes_into_the_task_folder(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]):
    monkeypatch.setattr("bench.lmeval.task_files.task_folder", lambda: tmp_path)
    assert main(["tasks", "--write"]) == 0
    assert sorted(p.name for p in tmp_path.glob("*.yaml")) == sorted(task_files())
    assert str(tmp_path) in capsys.readouterr().out
