"""End to end with the project's own CLI: ``python -m bench eval`` runs, then build and check."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from leaderboard._cli import main

pytestmark = pytest.mark.skipif(
    any(
        importlib.util.find_spec(m) is None
        for m in ("bench.lmeval.compressed_model", "bench.lmeval.reader_model", "bench.demo")
    ),
    reason="the project's compressed lm-eval models (bench.lmeval) are not available",
)


def _eval(model_dir: Path, data_dir: Path, compressor: str, out: Path) -> None:
    command = [
        sys.executable,
        "-m",
        "bench",
        "eval",
        "--model",
        "compressed_reader",
        "--model_args",
        f"tokenizer={model_dir},{compressor},compression_cache=off",
        "--tasks",
        "compressed_squad,compressed_regeneration_96",
        "--output_path",
        str(out),
        "--log_samples",
        "--device",
        "cpu",
    ]
    env = {
        **os.environ,
        "COMPRESSBENCH_DATA": str(data_dir),
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
    }
    done = subprocess.run(
        command, capture_output=True, text=True, env=env, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.slow  # two lm-eval start-ups (~20 s each on CI)
def test_bench_eval_runs_feed_build_and_check(tmp_path: Path) -> None:
    from bench.demo import prepare_demo

    model_dir, data_dir = prepare_demo(tmp_path / "demo")
    runs = tmp_path / "runs"
    _eval(model_dir, data_dir, "compressor=none", runs / "none")
    _eval(model_dir, data_dir, "compressor=truncate,rate=0.5", runs / "truncate")
    out = tmp_path / "site"
    assert main(["build", str(runs), "--out", str(out)]) == 0
    data = json.loads((out / "leaderboard.json").read_text(encoding="utf-8"))
    tables = {t["name"]: t for t in data["tables"]}
    labels = {row[1]["display"] for row in tables["raw"]["rows"]}
    assert labels == {"none", "truncate (rate=0.5)"}
    efficiency = tables["efficiency"]
    column = efficiency["columns"].index("rate (compressed/original)")
    rates = {row[1]["display"]: row[column]["value"] for row in efficiency["rows"]}
    assert rates["none"] == pytest.approx(1.0) and 0.4 < rates["truncate (rate=0.5)"] < 0.6
    assert "SQuAD F1" in tables["normalised"]["columns"]
    baseline = tmp_path / "baseline.json"
    assert main(["check", str(runs), "--baseline", str(baseline), "--update"]) == 0
    assert main(["check", str(runs), "--baseline", str(baseline), "--tolerance", "0"]) == 0
