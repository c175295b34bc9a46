"""bench.train stopped from outside: Ctrl-C, a full disk, a kill before the first checkpoint.

Each ends in one line (exit 130 or 1) and leaves the earlier output as it was; a restarted
run logs each step once.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.substrate.errors import DEBUG_ENV
from bench.train import main

REPO = Path(__file__).resolve().parents[3]


def _arguments(stories: Path, corpus: Path, out: Path, *extra: str) -> list[str]:
    return ["pretrain", "--preset", "tiny-cpu", "--method", "500x", "--base", str(stories),
            "--data", str(corpus), "--out", str(out), "--eval-every", "0", "--no-progress",
            *extra]


def _logged_steps(out: Path) -> list[int]:
    lines = (out / "train_log.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["step"] for line in lines]


def _contents(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` by relative name."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _environment() -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if k != DEBUG_ENV},
            "PYTHONPATH": str(REPO), "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1",
            "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def _error_lines(stderr: str) -> list[str]:
    assert "Traceback" not in stderr, stderr[-3000:]
    return [line for line in stderr.splitlines() if line.startswith("error:")]


@pytest.fixture()
def finished(stories: Path, small_corpus: Path, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A finished two-step run and the contents of its output folder."""
    out = tmp_path / "out"
    assert main(_arguments(stories, small_corpus, out, "--steps", "2", "--save-every", "2")) == 0
    return out, _contents(out)


@pytest.mark.slow
def test_a_run_killed_before_its_first_checkpoint_logs_each_step_once(
        stories: Path, small_corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    arguments = _arguments(stories, small_corpus, out, "--steps", "3", "--save-every", "100")
    assert main(arguments) == 0
    # What a kill after step 3 but before the checkpoint leaves: the log, a half-written line.
    for written in (*out.glob("checkpoint-*"), out / "final"):
        for path in sorted(written.rglob("*"), reverse=True):
            path.rmdir() if path.is_dir() else path.unlink()
        written.rmdir()
    with (out / "train_log.jsonl").open("a", encoding="utf-8") as log:
        log.write('{"step": 4, "lo')
    assert main(arguments) == 0
    assert _logged_steps(out) == [1, 2, 3]
    assert main([*arguments[:-2], "--save-every", "2", "--steps", "5"]) == 0
    assert _logged_steps(out) == [1, 2, 3, 4, 5]


def _wait_for_step(out: Path, step: int, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 600
    log = out / "train_log.jsonl"
    while time.monotonic() < deadline:
        if log.is_file() and len(log.read_text(encoding="utf-8").splitlines()) >= step:
            return
        assert process.poll() is None, process.communicate()[1][-3000:]
        time.sleep(0.05)
    raise AssertionError(f"step {step} not reached")


@pytest.mark.slow
def test_ctrl_c_ends_in_one_line_and_exit_130_keeping_the_output(
        finished: tuple[Path, dict[str, str]], stories: Path, small_corpus: Path) -> None:
    out, before = finished
    # more steps than any machine runs before the signal, however long this process waits
    endless = str(10**9)
    command = [sys.executable, "-m", "bench.train",
               *_arguments(stories, small_corpus, out, "--steps", endless, "--save-every",
                           endless)]
    process = subprocess.Popen(command, cwd=REPO, env=_environment(), text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait_for_step(out, 4, process)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=300)
    finally:
        process.kill()
    assert process.returncode == 130
    (line,) = _error_lines(stderr)
    assert line.startswith("error: interrupted")
    after = _contents(out)
    assert {name: after[name] for name in before if name != "train_log.jsonl"} == {
        name: digest for name, digest in before.items() if name != "train_log.jsonl"}
    assert sorted(after) == sorted(before)


def _small_files(limit: int) -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


@pytest.mark.slow
def test_a_full_disk_while_saving_ends_in_one_line_and_exit_1_keeping_the_output(
        finished: tuple[Path, dict[str, str]], stories: Path, small_corpus: Path) -> None:
    out, before = finished
    command = [sys.executable, "-m", "bench.train",
               *_arguments(stories, small_corpus, out, "--steps", "4", "--save-every", "2")]
    # Files may grow to 16 KiB: the log and the small JSON files fit, a checkpoint does not.
    done = subprocess.run(command, cwd=REPO, env=_environment(), text=True, capture_output=True,
                          timeout=600, check=False, preexec_fn=lambda: _small_files(1 << 14))
    assert done.returncode == 1, done.stderr[-3000:]
    (line,) = _error_lines(done.stderr)
    assert re.fullmatch(rf"error: {re.escape(str(out))}/\.checkpoint-0000004\.tmp/[\w.]+: "
                        r"File too large", line), line
    after = _contents(out)
    assert {name: after[name] for name in before if name != "train_log.jsonl"} == {
        name: digest for name, digest in before.items() if name != "train_log.jsonl"}
    assert sorted(after) == sorted(before)
