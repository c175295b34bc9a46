"""The corpus and ArxivQA folders are written as one unit, readers verify them, empty splits
still load."""

from __future__ import annotations

import errno
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from bench.prepare.cli import main as prepare_main
from bench.prepare.data_dir import CORPUS_REBUILD
from bench.prepare.regeneration import read_corpus_lengths
from bench.substrate.atomic import KILL_AFTER_WRITES_ENV
from bench.substrate.manifest import FolderCheckError, fill_rebuild, verify_folder
from bench.training.data import load_examples
from data_builders.arxiv.cli import main
from data_builders.arxiv.tables import SPLIT_SCHEMA
from data_builders.arxivqa.cli import main as arxivqa_main
from tests.data_builders.conftest import REPO, jsonl_record, random_text, write_jsonl
from tests.data_builders.test_arxivqa import KEY, ChatServer, args, good_pairs, write_corpus
from tests.kill_points import (
    fail_in_staging,
    kill_sweep,
    leftovers,
    run_forked,
    run_in_process,
    snapshot,
)


@pytest.fixture(autouse=True)
def _quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")
    monkeypatch.delenv(KILL_AFTER_WRITES_ENV, raising=False)


def corpus_source(path: Path, evals: int = 8, copy_train: bool = False) -> Path:
    train = [jsonl_record(f"2201.{i:05d}v1", f"2022-01-{i + 1:02d} 10:00:00", random_text(i, 80))
             for i in range(6)]
    texts = [random_text(i, 80) + " " + random_text(500 + i, 10) if copy_train
             else random_text(100 + i, 80) for i in range(evals)]
    papers = [jsonl_record(f"2402.{i:05d}v1", f"2024-02-{i + 1:02d} 10:00:00", text)
              for i, text in enumerate(texts)]
    return write_jsonl(path, train + papers)


def build_args(source: Path, out: Path, tokenizer: str, *extra: str) -> list[str]:
    return ["--source", "jsonl", "--input", str(source), "--after", "2024-01", "--tokenizer",
            tokenizer, "--lengths", "16,64", "--dev-size", "2", "--test-size", "3", "--out",
            str(out), *extra]


def manifest_of(folder: Path) -> dict[str, Any]:
    manifest: dict[str, Any] = json.loads((folder / "manifest.json").read_text())
    return manifest


@pytest.mark.slow
def test_kill_at_every_write_leaves_old_or_new(tmp_path: Path, tiny_tokenizer: str) -> None:
    source = corpus_source(tmp_path / "papers.jsonl")
    out = tmp_path / "corpus"
    new_args = build_args(source, out, tiny_tokenizer, "--seed", "7")
    assert main(new_args) == 0
    new = snapshot(out)
    assert main(build_args(source, out, tiny_tokenizer)) == 0
    old = snapshot(out)
    assert old is not None and new is not None and old != new
    (out / ".cache").mkdir()
    (out / ".cache" / "entry").write_text("cached")  # the API cache lives in OUT/.cache
    saved = tmp_path / "saved"
    shutil.copytree(out, saved)

    def reset() -> None:
        shutil.rmtree(out)
        shutil.copytree(saved, out)

    def check() -> None:
        verify_folder(out, CORPUS_REBUILD)
        read_corpus_lengths(out, [16, 64])  # the reader of bench.prepare regeneration

    run = lambda n: run_forked(main, new_args, n)  # noqa: E731
    seen = kill_sweep(run, out, old, new, reset, check, skip=(".cache",))
    assert seen[0] == "old" and seen[-1] == "new" and len(seen) >= 10
    assert (out / ".cache" / "entry").read_text() == "cached"
    assert leftovers(out) == []

    # The real command line, killed once the new folder is complete but not yet in place.
    reset()
    env = {**os.environ, KILL_AFTER_WRITES_ENV: str(seen.index("new"))}
    done = subprocess.run([sys.executable, "-m", "bench.build_arxiv", *new_args], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == -9
    assert snapshot(out, skip=(".cache",)) == old and len(leftovers(out)) == 1
    assert main(new_args) == 0
    assert snapshot(out, skip=(".cache",)) == new and leftovers(out) == []
    assert (out / ".cache" / "entry").read_text() == "cached"


FAULTS = pytest.mark.parametrize(
    ("fault", "status", "line"),
    [
        (KeyboardInterrupt(), 130, "error: interrupted"),
        (OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "out.parquet"), 1,
         f"error: out.parquet: {os.strerror(errno.ENOSPC)}"),
    ],
    ids=["ctrl_c", "full_disk"],
)


@FAULTS
def test_an_interrupt_or_a_full_disk_keeps_the_old_corpus(
    tmp_path: Path, tiny_tokenizer: str, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch, fault: BaseException, status: int, line: str,
) -> None:
    source = corpus_source(tmp_path / "papers.jsonl")
    out = tmp_path / "corpus"
    assert main(build_args(source, out, tiny_tokenizer)) == 0
    before = snapshot(out)
    capsys.readouterr()
    fail_in_staging(monkeypatch, fault)
    assert run_in_process(main, build_args(source, out, tiny_tokenizer, "--seed", "7")) == status
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("", line + "\n")
    assert snapshot(out) == before and leftovers(out) == []


@FAULTS
def test_an_interrupt_or_a_full_disk_keeps_the_old_arxivqa(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    fault: BaseException, status: int, line: str,
) -> None:
    monkeypatch.setenv("ARXIVQA_TEST_KEY", KEY)
    out = tmp_path / "qa"
    server = ChatServer(lambda marker, prompt, attempt: (200, {}, json.dumps(good_pairs(prompt)),
                                                         0))
    try:
        assert arxivqa_main(args(server, write_corpus(tmp_path / "c1", ["A", "B"]), out)) == 0
        before = snapshot(out, skip=("cache",))
        capsys.readouterr()
        fail_in_staging(monkeypatch, fault)
        other = write_corpus(tmp_path / "c2", ["C", "D"])
        assert run_in_process(arxivqa_main, args(server, other, out)) == status
    finally:
        server.close()
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("", line + "\n")
    assert snapshot(out, skip=("cache",)) == before and leftovers(out) == []


def test_empty_splits_still_load_and_the_card_says_why(
    tmp_path: Path, tiny_tokenizer: str
) -> None:
    import datasets

    out = tmp_path / "corpus"
    source = corpus_source(tmp_path / "papers.jsonl", evals=3)
    assert main(build_args(source, out, tiny_tokenizer, "--test-size", "5", "--lengths",
                           "16,4096")) == 0
    manifest = manifest_of(out)
    rows = {name: entry["rows"] for name, entry in manifest["outputs"].items() if "rows" in entry}
    assert rows["dev.parquet"] == rows["test_len4096.parquet"] == 0
    assert pq.read_schema(out / "dev.parquet").names == SPLIT_SCHEMA.names
    loaded = datasets.load_dataset("parquet", data_dir=str(out), cache_dir=str(tmp_path / "hf"))
    assert {k: v.num_rows for k, v in loaded.items()} == {
        "train": rows["train.parquet"], "test": rows["test.parquet"]}
    default = datasets.load_dataset(str(out), cache_dir=str(tmp_path / "hf"))
    assert sorted(default) == ["test", "train"]
    groups = datasets.load_dataset(str(out), "regeneration", cache_dir=str(tmp_path / "hf"))
    assert sorted(groups) == ["len16"]
    card = (out / "README.md").read_text()
    assert set(manifest["empty"]) == {"dev.parquet", "test_len4096.parquet"}
    for name, reason in manifest["empty"].items():
        assert f"| {name} | {reason} |" in card
    assert "test takes the first 5" in manifest["empty"]["dev.parquet"]


def test_no_test_paper_is_an_error_that_keeps_the_old_folder(
    tmp_path: Path, tiny_tokenizer: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "corpus"
    assert main(build_args(corpus_source(tmp_path / "good.jsonl"), out, tiny_tokenizer)) == 0
    before = snapshot(out)
    capsys.readouterr()
    copies = corpus_source(tmp_path / "copies.jsonl", evals=4, copy_train=True)
    assert main(build_args(copies, out, tiny_tokenizer)) == 2
    error = capsys.readouterr().err.strip()
    assert error == (
        "error: no dev/test paper left after the contamination audit: 4 candidates, 4 removed "
        f"for sharing a 13-gram with train (--keep-overlap keeps them); nothing written, {out} "
        "left as it was"
    )
    assert snapshot(out) == before and leftovers(out) == []


def test_an_output_folder_with_other_files_is_not_replaced(
    tmp_path: Path, tiny_tokenizer: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    assert main(build_args(corpus_source(tmp_path / "p.jsonl"), out, tiny_tokenizer)) == 2
    assert "holds 'notes.txt', which this command does not write" in capsys.readouterr().err
    assert snapshot(out) == {"notes.txt": b"keep me"} and leftovers(out) == []


def test_readers_refuse_a_damaged_corpus_with_its_rebuild_command(
    tmp_path: Path, tiny_tokenizer: str, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ARXIVQA_TEST_KEY", KEY)
    out = tmp_path / "corpus"
    assert main(build_args(corpus_source(tmp_path / "p.jsonl"), out, tiny_tokenizer)) == 0
    complete = snapshot(out)
    rebuild = fill_rebuild(manifest_of(out)["rebuild"], out)
    prepare = ["regeneration", "--source", str(out), "--lengths", "16", "--tokenizer",
               tiny_tokenizer, "--out", str(tmp_path / "data"), "--quiet"]
    with (out / "test_len16.parquet").open("ab") as handle:
        handle.write(b"\0")
    capsys.readouterr()
    assert prepare_main(prepare) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"error: {out}: test_len16.parquet has ")
    assert error.endswith(f"; rebuild it with: {rebuild}") and "\n" not in error
    with pytest.raises(FolderCheckError, match=r"test_len16\.parquet has"):
        load_examples(str(out), "regeneration")
    generate = ["--corpus", str(out), "--model", "m", "--base-url", "http://127.0.0.1:9/v1",
                "--api-key-env", "ARXIVQA_TEST_KEY", "--out", str(tmp_path / "qa")]
    assert arxivqa_main(generate) == 2
    assert capsys.readouterr().err.strip() == error
    assert not (tmp_path / "qa").exists()

    command = shlex.split(rebuild)
    assert command[:3] == ["python", "-m", "bench.build_arxiv"]
    assert main(command[3:]) == 0  # the command in the message rebuilds the corpus
    assert snapshot(out) == complete
    assert prepare_main(prepare) == 0
    assert len(load_examples(str(out), "regeneration")[0]) == manifest_of(out)["outputs"][
        "train.parquet"]["rows"]
    (out / "manifest.json").unlink()  # the card without its manifest: an incomplete build
    with pytest.raises(FolderCheckError, match=r"has a README\.md card but no manifest\.json"):
        load_examples(str(out), "regeneration")


def test_arxivqa_without_questions_keeps_the_old_output_and_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ARXIVQA_TEST_KEY", KEY)
    out = tmp_path / "qa"
    server = ChatServer(lambda marker, prompt, attempt: (
        200, {}, "no pairs" if marker.startswith("GARBAGE") else json.dumps(good_pairs(prompt)),
        0))
    try:
        assert arxivqa_main(args(server, write_corpus(tmp_path / "c1", ["A", "B"]), out)) == 0
        before = snapshot(out, skip=("cache",))
        cached = len(list((out / "cache").iterdir()))
        capsys.readouterr()
        garbage = write_corpus(tmp_path / "c2", ["GARBAGE1", "GARBAGE2"])
        assert arxivqa_main(args(server, garbage, out)) == 2
    finally:
        server.close()
    error = capsys.readouterr().err
    assert "no usable question from 2 contexts" in error and "'unparseable_response': 2" in error
    assert snapshot(out, skip=("cache",)) == before and leftovers(out) == []
    assert len(list((out / "cache").iterdir())) == cached + 2
    verify_folder(out, "python -m bench.build_arxivqa ...", required=("test.jsonl",))
