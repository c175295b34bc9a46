"""The stock ``lm_eval`` command with the ``compressed`` model and with ``--model hf``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import read_results, read_samples

LIMIT = 3


def _lm_eval(args: list[str], data: Path, out: Path, program: str = "lm_eval") -> None:
    env = {**os.environ, "COMPRESSBENCH_DATA": str(data), "HF_HUB_OFFLINE": "1",
           "HF_DATASETS_OFFLINE": "1"}
    prefix = [program, "-m", "bench", "eval"] if program == sys.executable else [program]
    command = [*prefix, *args, "--output_path", str(out), "--log_samples",
               "--limit", str(LIMIT), "--device", "cpu"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]


@pytest.fixture(scope="module")
def stock_runs(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path,
               demo_data_dir: Path) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("stock")
    runs = {
        "compressed_none": ["--model", "compressed", "--model_args",
                            f"pretrained={tiny_model_dir},compressor=none,compression_cache=off"],
        "hf": ["--model", "hf", "--model_args", f"pretrained={tiny_model_dir}"],
    }
    for name, args in runs.items():
        _lm_eval(["--tasks", "compressed_squad", *args], demo_data_dir, out / name)
    return {name: out / name for name in runs}


@pytest.mark.slow
def test_stock_cli_compressed_model_writes_scores_and_efficiency(stock_runs: dict[str, Path]):
    results = read_results(stock_runs["compressed_none"])["results"]
    squad = results["compressed_squad"]  # type: ignore[index]
    for metric in ("squad_f1", "squad_exact_match", "f1_500x", "compression_ratio",
                   "original_tokens", "answer_seconds", "ttft_seconds", "flops_ratio"):
        assert f"{metric},none" in squad, metric
    assert squad["compression_ratio,none"] == 1.0
    info = read_results(stock_runs["compressed_none"])["config"]["compressbench"]  # type: ignore[index]
    assert info["compressor"] == {"name": "none", "version": "1", "settings": {},
                                  "family": "baseline", "question_aware": False,
                                  "budget_options": []}


@pytest.mark.slow
def test_stock_cli_hf_model_runs_project_tasks(stock_runs: dict[str, Path]):
    results = read_results(stock_runs["hf"])["results"]
    squad = results["compressed_squad"]  # type: ignore[index]
    assert 0.0 <= squad["squad_f1,none"] <= 1.0
    assert "compression_ratio,none" not in squad


@pytest.mark.slow
def test_compressor_none_reproduces_hf_generations_exactly(stock_runs: dict[str, Path]):
    ours = read_samples(stock_runs["compressed_none"], "compressed_squad")
    stock = read_samples(stock_runs["hf"], "compressed_squad")
    assert len(ours) == len(stock) == LIMIT
    by_id = {s["doc"]["qid"]: s for s in stock}  # type: ignore[index]
    for sample in ours:
        twin = by_id[sample["doc"]["qid"]]  # type: ignore[index]
        assert sample["arguments"] == twin["arguments"]
        assert sample["resps"] == twin["resps"]
        assert sample["squad_f1"] == twin["squad_f1"]


@pytest.mark.slow
def test_python_m_bench_eval_takes_the_same_flags(tmp_path: Path, tiny_model_dir: Path,
                                                  demo_data_dir: Path):
    _lm_eval(["--tasks", "compressed_squad", "--model", "compressed_reader", "--model_args",
              f"tokenizer={tiny_model_dir},compressor=truncate,rate=0.5"],
             demo_data_dir, tmp_path, program=sys.executable)
