"""bench.prepare writes its folder as one unit, readers verify it, and no rows is an error."""

from __future__ import annotations

import errno
import json
import os
import shlex
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.demo_data import demo_qa_path, demo_regeneration_records
from bench.lmeval.task_functions import load_qa
from bench.prepare.cli import main, prepare_regeneration_from_texts
from bench.prepare.data_dir import prepare_hint, verified_benchmark_dir
from bench.prepare.mrqa import read_mrqa
from bench.prepare.prepared_io import NoUsableRowsError
from bench.substrate.atomic import KILL_AFTER_WRITES_ENV
from bench.substrate.manifest import FolderCheckError, fill_rebuild
from bench.tiny import train_tokenizer
from tests.kill_points import (
    fail_in_staging,
    kill_sweep,
    leftovers,
    run_forked,
    run_in_process,
    snapshot,
)

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    texts = [s.context for s in read_mrqa(demo_qa_path())]
    texts += [r["text"] for r in demo_regeneration_records()]
    return train_tokenizer(texts, tmp_path_factory.mktemp("tok"), vocab_size=400)


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")
    monkeypatch.delenv(KILL_AFTER_WRITES_ENV, raising=False)


def squad_args(root: Path, tokenizer_dir: Path, source: Path | None = None,
               limit: int = 5) -> list[str]:
    subset = [] if source else ["--subset", "squad"]  # the demo file labels five benchmarks
    return ["squad", "--source", str(source or demo_qa_path()), *subset, "--tokenizer",
            str(tokenizer_dir), "--max-context-tokens", "64", "--limit", str(limit),
            "--out", str(root), "--quiet"]


def manifest_of(folder: Path) -> dict[str, Any]:
    manifest: dict[str, Any] = json.loads((folder / "manifest.json").read_text())
    return manifest


def test_kill_at_every_write_leaves_old_or_new(
    tmp_path: Path, tokenizer_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "data"
    monkeypatch.setenv("COMPRESSBENCH_DATA", str(root))
    folder = root / "squad"
    new_args = squad_args(root, tokenizer_dir, limit=8)
    assert main(new_args) == 0
    new = snapshot(folder)
    assert main(squad_args(root, tokenizer_dir)) == 0
    old = snapshot(folder)
    assert old is not None and new is not None and old != new
    saved = tmp_path / "saved"
    shutil.copytree(folder, saved)

    def reset() -> None:
        shutil.rmtree(folder)
        shutil.copytree(saved, folder)

    siblings: list[int] = []

    def check() -> None:
        rows = len(load_qa("squad")["test"])  # the task's reader accepts the folder
        assert rows == manifest_of(folder)["output"]["rows"]
        siblings.append(len(leftovers(folder)))

    seen = kill_sweep(lambda n: run_forked(main, new_args, n), folder, old, new, reset, check)
    assert seen[0] == "old" and seen[-1] == "new" and "old" in seen[:-1]
    assert max(siblings) > 0, "killed runs left staging folders beside the benchmark"
    assert leftovers(folder) == [], "the completed run removed every leftover"

    # The real command line, killed right after the swap: new folder, old one still beside it.
    reset()
    first_new = seen.index("new") + 1
    env = {**os.environ, KILL_AFTER_WRITES_ENV: str(first_new)}
    done = subprocess.run([sys.executable, "-m", "bench.prepare", *new_args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == -9
    assert snapshot(folder) == new and len(leftovers(folder)) == 1
    verified_benchmark_dir("squad", root)


def test_readers_refuse_damaged_folders(
    tmp_path: Path, tokenizer_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "data"
    folder = root / "squad"
    monkeypatch.setenv("COMPRESSBENCH_DATA", str(root))
    assert main(squad_args(root, tokenizer_dir)) == 0
    complete = snapshot(folder)
    assert complete is not None
    rebuild = fill_rebuild(manifest_of(folder)["rebuild"], folder)
    assert len(load_qa("squad")["test"]) == manifest_of(folder)["output"]["rows"]

    with (folder / "test.parquet").open("ab") as handle:
        handle.write(b"\0")
    with pytest.raises(FolderCheckError) as tampered:
        load_qa("squad")
    assert str(tampered.value) == (
        f"{folder}: test.parquet has {(folder / 'test.parquet').stat().st_size} bytes, "
        f"manifest.json lists {len(complete['test.parquet'])}; rebuild it with: {rebuild}"
    )
    command = shlex.split(rebuild)
    assert command[:3] == ["python", "-m", "bench.prepare"]
    assert main(command[3:]) == 0  # the command in the message rebuilds the benchmark
    assert snapshot(folder) == complete

    (folder / "manifest.json").unlink()  # a half folder: data and card, no manifest
    with pytest.raises(FolderCheckError) as half:
        load_qa("squad")
    assert str(half.value) == (
        f"{folder}: no manifest.json (an incomplete or foreign folder); rebuild it with: "
        f"{fill_rebuild(prepare_hint('squad'), folder)}"
    )
    assert "--out " + str(root) in str(half.value)


def test_no_usable_question_is_an_error_that_keeps_the_old_folder(
    tmp_path: Path, tokenizer_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "data"
    assert main(squad_args(root, tokenizer_dir)) == 0
    before = snapshot(root / "squad")
    capsys.readouterr()
    unanswerable = tmp_path / "unanswerable.jsonl"
    lines = [{"header": {"dataset": "Toy"}},
             {"context": "Alpha beta gamma delta.", "qas": [
                 {"qid": "q1", "question": "Which animal?", "answers": ["zebra"]},
                 {"qid": "q2", "question": "Which colour?", "answers": ["purple"]}]}]
    unanswerable.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert main(squad_args(root, tokenizer_dir, source=unanswerable)) == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and error.startswith("error: squad: no usable question in")
    assert "questions_read=2" in error and "dropped_answer_not_in_context=2" in error
    assert f"({root / 'squad'} left as it was)" in error
    assert snapshot(root / "squad") == before and leftovers(root / "squad") == []

    header_only = tmp_path / "header.jsonl"
    header_only.write_text(json.dumps(lines[0]) + "\n")
    assert main(squad_args(root, tokenizer_dir, source=header_only)) == 2
    assert capsys.readouterr().err.startswith("error: ")
    assert snapshot(root / "squad") == before


FULL_DISK = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "test.parquet")


@pytest.mark.parametrize(
    ("fault", "status", "line"),
    [
        (KeyboardInterrupt(), 130, "error: interrupted"),
        (FULL_DISK, 1, f"error: test.parquet: {os.strerror(errno.ENOSPC)}"),
    ],
    ids=["ctrl_c", "full_disk"],
)
def test_an_interrupt_or_a_full_disk_keeps_the_old_folder(
    tmp_path: Path, tokenizer_dir: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch, fault: BaseException, status: int, line: str,
) -> None:
    root = tmp_path / "data"
    assert main(squad_args(root, tokenizer_dir)) == 0
    before = snapshot(root / "squad")
    capsys.readouterr()
    fail_in_staging(monkeypatch, fault)
    assert run_in_process(main, squad_args(root, tokenizer_dir, limit=8)) == status
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("", line + "\n")
    assert snapshot(root / "squad") == before and leftovers(root / "squad") == []


def test_regeneration_without_a_long_enough_text_is_an_error(
    tmp_path: Path, tokenizer_dir: Path
) -> None:
    records = [{"id": "a", "text": "Too short."}, {"id": "b", "text": "Also short."}]
    with pytest.raises(NoUsableRowsError, match="length 64: read=2, dropped_too_short=2"):
        prepare_regeneration_from_texts(records, tmp_path, str(tokenizer_dir), lengths=[64],
                                        show_progress=False)
    assert not (tmp_path / "regeneration").exists() and leftovers(tmp_path / "regeneration") == []


def test_prepared_files_follow_the_umask(tmp_path: Path, tokenizer_dir: Path) -> None:
    previous = os.umask(0o022)
    try:
        assert main(squad_args(tmp_path, tokenizer_dir)) == 0
    finally:
        os.umask(previous)
    folder = tmp_path / "squad"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o755
    assert {stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()} == {0o644}
