"""build_arxivqa on bad input: one line naming the file, exit 2, no request sent, no files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.substrate.errors import DEBUG_ENV
from data_builders.arxivqa.cli import main
from tests.data_builders.conftest import REPO


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DEBUG_ENV, raising=False)
    monkeypatch.setenv("ARXIVQA_TEST_KEY", "not-a-real-key")


def _argv(tmp_path: Path, *extra: str) -> list[str]:
    # port 9 (discard) is never contacted: every case fails before the first request
    return ["--corpus", str(tmp_path / "corpus"), "--model", "m", "--base-url",
            "http://127.0.0.1:9/v1", "--api-key-env", "ARXIVQA_TEST_KEY", "--out",
            str(tmp_path / "out"), *extra]


def test_a_prompt_file_that_is_not_utf8_is_named_with_its_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prompt = tmp_path / "prompt.txt"
    prompt.write_bytes(b"Context: {truncated_context}\nAsk {number} questions \xe9t\xe9.\n")
    assert main(_argv(tmp_path, "--prompt-file", str(prompt))) == 2
    assert capsys.readouterr().err == (
        f"error: {prompt}:2: not UTF-8 (byte 0xe9); save the prompt template as UTF-8\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prompt.txt"]


@pytest.mark.slow
def test_a_missing_corpus_exits_2_in_one_line_and_debug_shows_the_traceback(
        tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != DEBUG_ENV}
    command = [sys.executable, "-m", "bench.build_arxivqa", *_argv(tmp_path)]
    plain = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                           timeout=300, check=False)
    assert plain.returncode == 2 and plain.stdout == ""
    assert plain.stderr.startswith(f"error: --corpus {tmp_path / 'corpus'}")
    assert plain.stderr.count("\n") == 1 and "Traceback" not in plain.stderr
    traced = subprocess.run([*command, "--debug"], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=300, check=False)
    assert traced.returncode == 2 and traced.stderr.startswith("Traceback")
    assert traced.stderr.endswith(plain.stderr)
    assert not any(tmp_path.iterdir()), "a bad input left files behind"
