"""build_arxiv on a damaged snapshot: the file and line named, exit 2, --skip-bad counts it."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import pytest

from bench.substrate.errors import DEBUG_ENV
from data_builders.arxiv.cli import main
from data_builders.arxiv.sources import TRUNCATED
from tests.data_builders.conftest import REPO, random_text

BAD_LINE_HINT = "fix or remove that line, or pass --skip-bad to skip and count bad lines"


def _record(i: int) -> dict[str, Any]:
    month = 1 + i % 5
    name = ("Jan", "Feb", "Mar", "Apr", "May")[month - 1]
    created = f"Mon, {1 + i % 27} {name} 2024 10:00:00 GMT"
    if i % 3 == 0:
        created = created.replace("2024", "2022")
    return {"id": f"24{month:02d}.{i:05d}", "title": f"Paper {i}", "abstract": random_text(i),
            "categories": "cs.CL", "versions": [{"version": "v1", "created": created}]}


def _snapshot_lines(n: int) -> list[bytes]:
    return [json.dumps(_record(i)).encode() + b"\n" for i in range(n)]


def _argv(source: Path, out: Path, tokenizer: str, *extra: str) -> list[str]:
    return ["--source", "snapshot", "--input", str(source), "--after", "2024-01",
            "--before", "2024-06", "--train-before", "2023-07", "--tokenizer", tokenizer,
            "--lengths", "16", "--dev-size", "2", "--test-size", "3", "--out", str(out), *extra]


@pytest.fixture(autouse=True)
def _no_debug(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DEBUG_ENV, raising=False)


def _fails_with(capsys: pytest.CaptureFixture[str], argv: list[str], folder: Path,
                inputs: set[str]) -> str:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err
    left = {p.name for p in folder.rglob("*")} - inputs
    assert not left, f"a bad input left files behind: {left}"
    return captured.err


def _counts(out: Path) -> dict[str, int]:
    counts: dict[str, int] = json.loads((out / "manifest.json").read_text())["counts"]
    return counts


def test_a_bad_byte_on_line_50_is_reported_there_and_skippable(
        tmp_path: Path, tiny_tokenizer: str, capsys: pytest.CaptureFixture[str]) -> None:
    lines = _snapshot_lines(70)
    assert sum(len(line) for line in lines[:49]) > 8192, "line 50 lies past the first read"
    lines[49] = lines[49].replace(b"Paper", b"Pap\xe9r", 1)
    offset = lines[49].index(b"\xe9")
    source = tmp_path / "snapshot.json"
    source.write_bytes(b"".join(lines))
    err = _fails_with(capsys, _argv(source, tmp_path / "out", tiny_tokenizer), tmp_path,
                      {source.name})
    assert err == (f"error: {source}:50: field '<line>': not UTF-8 (byte 0xe9 at line offset "
                   f"{offset}); {BAD_LINE_HINT}\n")
    out = tmp_path / "skipped"
    assert main(_argv(source, out, tiny_tokenizer, "--skip-bad")) == 0
    counts = _counts(out)
    assert (counts["records_read"], counts["bad_records_skipped"]) == (70, 1)


def test_a_truncated_gzip_names_the_line_and_skip_bad_keeps_the_lines_before(
        tmp_path: Path, tiny_tokenizer: str, capsys: pytest.CaptureFixture[str]) -> None:
    data = gzip.compress(b"".join(_snapshot_lines(400)))
    cut = data[: len(data) * 2 // 3]
    whole_lines = zlib.decompressobj(31).decompress(cut).count(b"\n")
    source = tmp_path / "snapshot.json.gz"
    source.write_bytes(cut)
    err = _fails_with(capsys, _argv(source, tmp_path / "out", tiny_tokenizer), tmp_path,
                      {source.name})
    assert err == (
        f"error: {source}:{whole_lines + 1}: field '<file>': truncated or corrupt input from "
        "here on (Compressed file ended before the end-of-stream marker was reached); copy or "
        "download the file again, or pass --skip-bad to keep the lines before it\n")
    out = tmp_path / "skipped"
    assert main(_argv(source, out, tiny_tokenizer, "--skip-bad")) == 0
    counts = _counts(out)
    assert (counts["records_read"], counts[TRUNCATED]) == (whole_lines, 1)
    assert "bad_records_skipped" not in counts


def test_the_command_exits_2_and_debug_shows_the_traceback(tmp_path: Path,
                                                           tiny_tokenizer: str) -> None:
    lines = _snapshot_lines(5)
    lines[2] = b"\xff" + lines[2]
    source = tmp_path / "snapshot.json"
    source.write_bytes(b"".join(lines))
    env = {k: v for k, v in os.environ.items() if k != DEBUG_ENV}
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    command = [sys.executable, "-m", "bench.build_arxiv",
               *_argv(source, tmp_path / "out", tiny_tokenizer)]
    plain = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                           timeout=300, check=False)
    assert plain.returncode == 2 and plain.stdout == ""
    assert plain.stderr == (f"error: {source}:3: field '<line>': not UTF-8 (byte 0xff at line "
                            f"offset 0); {BAD_LINE_HINT}\n")
    traced = subprocess.run([*command, "--debug"], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=300, check=False)
    assert traced.returncode == 2 and traced.stderr.startswith("Traceback")
    assert "BadRecordError" in traced.stderr and traced.stderr.endswith(plain.stderr)
