"""``python -m bench sweep`` end to end on the tiny model: lm-eval output folders as the
``lm_eval`` command writes them, the same results as one lm-eval run per combination, the
leaderboard, and a sweep killed by a signal that the next one completes."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.__main__ import main
from bench.compressors.selective_context import SelectiveContext
from bench.lmeval.run import run_lm_eval
from bench.substrate.atomic import KILL_AFTER_WRITES_ENV
from bench.sweep import SweepSettings, parse_compressors, prepare_sweep, run_sweep
from tests.conftest import read_results, read_samples

TASK = "compressed_squad"
READER = "compressed_reader"
RUN_NAMES = ("lexical-reader-{model}__none", "lexical-reader-{model}__truncate_rate=0.25")


def _command(model_dir: Path, out: Path) -> list[str]:
    return ["sweep", "--model", READER, "--pretrained", str(model_dir), "--compressors",
            "none;truncate:rate=0.25", "--model_args", "compression_cache=off",
            "--tasks", TASK, "--limit", "3", "--device", "cpu", "--out", str(out)]


def _rows(page: Path) -> list[str]:
    with (page / "raw.csv").open(encoding="utf-8", newline="") as handle:
        return sorted(row["Compressor"] for row in csv.DictReader(handle))


def test_a_sweep_writes_lm_evals_folders_and_the_page(data_env: Path, tiny_model_dir: Path,
                                                     tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]):
    out = tmp_path / "sweep"
    assert main(_command(tiny_model_dir, out)) == 0
    names = [name.format(model=tiny_model_dir.name) for name in RUN_NAMES]
    assert sorted(p.name for p in (out / "runs").iterdir()) == sorted(names)
    assert _rows(out / "leaderboard") == ["none", "truncate (rate=0.25)"]
    assert f"[sweep] page: {out / 'leaderboard' / 'index.html'}" in capsys.readouterr().out
    # the second combination answered on the reader loaded for the first: as a run of its own
    alone = tmp_path / "alone" / "results.json"
    args = f"tokenizer={tiny_model_dir},compressor=truncate,rate=0.25,compression_cache=off"
    run_lm_eval(READER, args, (TASK,), alone, limit=3, device="cpu")
    swept, single = read_results(out / "runs" / names[1]), read_results(alone.parent)
    assert _unmeasured(swept["results"]) == _unmeasured(single["results"])
    for key in ("n-samples", "model_source", "model_name"):
        assert swept[key] == single[key], key
    for key in ("model", "model_args", "limit"):
        assert swept["config"][key] == single["config"][key], key
    for key in ("compressor", "target", "compressions"):
        assert swept["config"]["compressbench"][key] == single["config"]["compressbench"][key]
    assert [s["resps"] for s in read_samples(out / "runs" / names[1], TASK)] == \
        [s["resps"] for s in read_samples(alone.parent, TASK)]


def _unmeasured(results: dict[str, dict[str, object]]) -> dict[str, dict[str, object]]:
    """The results without the timings and memory peaks, which vary from run to run."""
    return {task: {key: value for key, value in metrics.items()
                   if "seconds" not in key and "peak_" not in key}
            for task, metrics in results.items()}


def test_a_sweep_scores_each_context_once_across_rates(data_env: Path, tiny_model_dir: Path,
                                                       tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch):
    scored: list[str] = []  # each context selective_context's model scores
    score = SelectiveContext._score_tokens

    def counting(compressor: SelectiveContext, context: str) -> Any:
        scored.append(context)
        return score(compressor, context)

    monkeypatch.setattr(SelectiveContext, "_score_tokens", counting)
    settings = SweepSettings(READER, str(tiny_model_dir), (TASK,), tmp_path / "sweep",
                             model_args="compression_cache=off", limit=5, device="cpu")
    spec = f"selective_context:compressor_model={tiny_model_dir},rate=0.5,0.25"
    outcomes = list(run_sweep(settings, prepare_sweep(settings, parse_compressors(spec))))
    assert len(scored) > 1 and sorted(scored) == sorted(set(scored))
    assert [outcome.reused for outcome in outcomes] == [0, len(scored)]
    swept = [_untimed(read_samples(outcome.run.folder, TASK)) for outcome in outcomes]
    reusing = outcomes[1].run  # its scores came from the first run: as a run of its own
    alone = tmp_path / "alone"
    scored.clear()
    run_lm_eval(READER, reusing.model_args, (TASK,), alone / "results.json", limit=5,
                device="cpu")
    assert _untimed(read_samples(alone, TASK)) == swept[1] != swept[0]
    assert len(scored) == outcomes[1].reused


def _untimed(samples: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The samples (prompts with the compressed contexts, answers, scores) without the
    timings and memory peaks."""
    return [{key: value for key, value in sample.items()
             if "seconds" not in key and "peak_" not in key} for sample in samples]


@pytest.mark.slow  # a second interpreter start-up
def test_a_sweep_killed_after_its_first_run_is_completed_by_the_next(
        data_env: Path, tiny_model_dir: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]):
    out = tmp_path / "sweep"
    env = {**os.environ, KILL_AFTER_WRITES_ENV: "1"}  # SIGKILL once one folder is in place
    killed = subprocess.run([sys.executable, "-m", "bench", *_command(tiny_model_dir, out)],
                            env=env, capture_output=True, text=True, timeout=600, check=False)
    assert killed.returncode == -9, killed.stderr[-2000:]
    (first,) = (out / "runs").iterdir()
    before = sorted(p.name for p in first.iterdir())
    assert main(_command(tiny_model_dir, out)) == 0
    assert "none: finished earlier" in capsys.readouterr().out
    assert sorted(p.name for p in first.iterdir()) == before
    assert len(list((out / "runs").iterdir())) == len(RUN_NAMES)
    assert _rows(out / "leaderboard") == ["none", "truncate (rate=0.25)"]
