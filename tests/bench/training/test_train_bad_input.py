"""bench.train on bad input: one line naming the flag or file, exit 2, nothing written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.substrate.errors import DEBUG_ENV
from bench.train import build_parser, main

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(autouse=True)
def _no_debug(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DEBUG_ENV, raising=False)


def _argv(tmp_path: Path, *extra: str) -> list[str]:
    return ["pretrain", "--data", str(tmp_path / "corpus"), "--out", str(tmp_path / "out"),
            *extra]


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ((), "error: --method is required (or a --preset that sets it)\n"),
        (("--method", "500x", "--base", "{tmp}/no-model"),
         "error: {tmp}/no-model: field '--base': no such file or folder; give a local model "
         "folder or a hub id\n"),
        (("--method", "icae", "--base", "gpt2"),
         "error: {tmp}/corpus: field '--data': no such file or folder; give a corpus folder, "
         "a parquet or an MRQA file\n"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: tuple[str, ...],
        expected: str) -> None:
    args = [part.replace("{tmp}", str(tmp_path)) for part in extra]
    if "--base" not in args:
        args += ["--base", str(tmp_path)]
    assert main(_argv(tmp_path, *args)) == 2
    assert capsys.readouterr().err == expected.replace("{tmp}", str(tmp_path))
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (("--save-every", "0"), "field '--save-every': must be a whole number >= 1, got 0"),
        (("--lr", "inf"), "field '--lr': must be a finite number > 0, got inf"),
        (("--lr", "nan"), "field '--lr': must be a finite number > 0, got nan"),
        (("--lr", "-0.001"), "field '--lr': must be a finite number > 0, got -0.001"),
        (("--weight-decay", "-1"), "field '--weight-decay': must be a finite number >= 0, "
                                   "got -1.0"),
        (("--max-grad-norm", "inf"), "field '--max-grad-norm': must be a finite number >= 0, "
                                     "got inf"),
        (("--lora-dropout", "1"), "field '--lora-dropout': must be a number in [0, 1), got 1.0"),
        (("--warmup-steps", "-1"), "field '--warmup-steps': must be a whole number >= 0, "
                                   "got -1"),
        (("--eval-every", "-5"), "field '--eval-every': must be a whole number >= 0, got -5"),
        (("--peak-tflops", "nan"), "field '--peak-tflops': must be a finite number > 0, "
                                   "got nan"),
    ],
)
def test_impossible_numbers_are_one_line_and_exit_2(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: tuple[str, ...],
        expected: str) -> None:
    (tmp_path / "corpus").mkdir()
    assert main(_argv(tmp_path, "--method", "500x", "--base", str(tmp_path), *extra)) == 2
    assert capsys.readouterr().err == f"error: {expected}\n"
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_the_command_exits_2_without_a_traceback(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != DEBUG_ENV}
    command = [sys.executable, "-m", "bench.train", *_argv(tmp_path, "--base", str(tmp_path))]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == "error: --method is required (or a --preset that sets it)\n"
    assert "--debug" in build_parser().format_help()
