"""The harness benchmark's settings, its compress-once ratio and (slow) its ``--quick`` run."""

from __future__ import annotations

import os
import shlex
import statistics
import subprocess
import sys

import pytest

from tests.benchmarks.conftest import BENCHMARKS, load_script
from tests.conftest import REPO_ROOT

bench_harness = load_script("bench_harness")


@pytest.mark.parametrize("argv", [
    ["--quick"],
    ["--sizes", "100m", "--tasks", "compressed_squad", "--limit", "7", "--rounds", "5",
     "--batch-size", "2", "--per-context", "3", "--skip-cli", "--threads", "1",
     "--out", "/tmp/models"],
])
def test_printed_command_reproduces_the_settings(argv: list[str]):
    settings = bench_harness.parse_settings(argv)
    words = shlex.split(settings.command())
    assert words[:2] == ["python", "benchmarks/bench_harness.py"]
    assert bench_harness.parse_settings(words[2:]) == settings


@pytest.mark.parametrize("argv", [["--rounds", "2"], ["--sizes", "7b"]])
def test_too_few_rounds_and_unknown_sizes_are_refused(argv: list[str]):
    with pytest.raises(SystemExit):
        bench_harness.parse_settings(argv)


def test_compress_once_ratio_pairs_the_modes_of_each_round():
    once, per_question = [0.10, 0.50, 0.12], [0.48, 2.60, 0.55]
    result = bench_harness.CompressOnce(once, per_question, {"once": 3, "per_question": 15}, 5)
    paired = statistics.median(p / o for p, o in zip(per_question, once, strict=True))
    assert result.ratio == paired
    assert result.ratio != statistics.median(per_question) / statistics.median(once)


@pytest.mark.slow  # builds the demo data and runs lm-eval 8 times (about a minute on 2 cores)
def test_quick_run_prints_the_table_and_a_reproducible_command(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    done = subprocess.run([sys.executable, str(BENCHMARKS / "bench_harness.py"), "--quick",
                           "--out", str(tmp_path)], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    lines = done.stdout.splitlines()
    same = next(line for line in lines if line.startswith("same answers hf vs compressed"))
    assert same.split()[-1] == "True"
    counts = next(line for line in lines if "compressions per round" in line).split()
    once, per_question = int(counts[-3]), int(counts[-1])
    quick = bench_harness.parse_settings(["--quick", "--out", str(tmp_path)])
    assert per_question == once * quick.per_context
    command = next(line for line in lines if line.startswith("reproduce: "))
    assert bench_harness.parse_settings(
        shlex.split(command.removeprefix("reproduce: "))[2:]) == quick
