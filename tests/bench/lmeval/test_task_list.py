"""``python -m bench tasks`` lists every task of the task folder with the state of its data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from bench.__main__ import main
from bench.lmeval.task_functions import task_folder
from bench.lmeval.task_list import format_task_list, read_tasks


def _task_names() -> set[str]:
    names = set()
    for path in task_folder().glob("*.yaml"):
        text = path.read_text(encoding="utf-8").replace("!function", "")
        config = yaml.safe_load(text)
        names.add(config.get("group") or config["task"])
    return names


def _prepare_fake(root: Path, benchmark: str, lengths: list[int] | None = None) -> None:
    folder = root / benchmark
    folder.mkdir(parents=True)
    (folder / "test.parquet").write_bytes(b"")
    if lengths is not None:
        manifest = {"args": {"lengths": lengths}}
        (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")


def _line(listing: str, task: str) -> str:
    return next(line for line in listing.splitlines() if line.split()[:1] == [task])


def test_every_task_and_group_is_listed_once():
    entries = read_tasks()
    assert sorted(entry.name for entry in entries) == sorted(_task_names())
    groups = {entry.name: entry.members for entry in entries if entry.is_group}
    members = {member for group in groups.values() for member in group}
    assert members == {entry.name for entry in entries if not entry.is_group}


def test_the_listing_says_which_data_is_prepared(tmp_path: Path):
    _prepare_fake(tmp_path, "squad")
    _prepare_fake(tmp_path, "regeneration", lengths=[96])
    listing = format_task_list(tmp_path)
    assert _line(listing, "compressed_squad").endswith("data squad: prepared")
    assert _line(listing, "compressed_race").endswith("data race: not prepared")
    assert _line(listing, "compressed_regeneration_96").endswith(
        "texts of 96 tokens: prepared")
    assert _line(listing, "compressed_regeneration_192").endswith(
        "texts of 192 tokens: prepared without this length")
    assert f"--out {tmp_path}" in listing


def test_the_command_lists_the_data_directory_it_is_given(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    _prepare_fake(tmp_path, "hotpotqa")
    assert main(["tasks", "--data", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert _line(out, "compressed_hotpotqa").endswith("prepared")
    for name in _task_names():
        assert _line(out, name)
