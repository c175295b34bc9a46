"""Runs of a second target model for the page tests: every family the page filters by, sizes
in bits, requested rates, a smoke-test row and a GPU machine's environment report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.harness.answering import model_info
from bench.results_record import CompressorRecord, RunInfo, TargetRecord
from tests.leaderboard._lmeval_files import write_results

MODEL = "org/model-b"
TASKS = ("compressed_squad", "compressed_race", "compressed_regeneration_96",
         "compressed_regeneration_192")
GPU = "NVIDIA H100 80GB HBM3"
ENV_REPORT = (f"PyTorch version: 2.13.0+cu128\nGPU models and configuration: \nGPU 0: {GPU}\n"
              f"GPU 1: {GPU}\n\nCPU:\nCPU(s):  16\nModel name:  AMD EPYC 9454\n")
# folder -> (compressor, settings, family, budget options, score, rate, bits per byte)
ROWS: dict[str, tuple[str, dict[str, Any], str, tuple[str, ...], float, float, float]] = {
    "none": ("none", {}, "baseline", (), 0.6, 1.0, 2.3),
    "llmzip": ("llmzip", {"window": 512}, "lossless", (), 0.6, 1.0, 2.1),
    "truncate-0.5": ("truncate", {"rate": 0.5}, "hard", ("rate",), 0.4, 0.5, 1.1),
    "truncate-0.25": ("truncate", {"rate": 0.25}, "hard", ("rate",), 0.3, 0.25, 0.55),
    "500x": ("500x", {"num_mem": 4}, "soft-embeddings", ("num_mem",), 0.35, 0.05, 900.0),
    "press-0.5": ("kvpress", {"press": "snapkv", "rate": 0.5}, "KV-eviction", ("rate",),
                  0.45, 0.5, 1500.0),
    "smoke": ("random_drop", {"rate": 0.5}, "hard", ("rate",), 0.0, 0.5, 1.0),
}
SMOKE = "random_drop (rate=0.5)"


def _metrics(score: float, rate: float, bits_per_byte: float, requested: float | None
             ) -> dict[str, dict[str, float]]:
    size = {"compressed_bits": 1000.0 * bits_per_byte, "original_bytes": 1000.0,
            "original_tokens": 250.0, "compressed_tokens": 250.0 * rate,
            "compression_ratio": rate}
    if requested is not None:
        size["requested_rate"] = requested
    return {task: {("rouge_l_f" if "regeneration" in task else "squad_f1"): score, **size}
            for task in TASKS}


def write_page_runs(root: Path) -> Path:
    """The runs of :data:`MODEL` under ``root`` (returned)."""
    for folder, (name, settings, family, budget, score, rate, bits) in ROWS.items():
        record = CompressorRecord(name, "1", settings, family=family, question_aware=False,
                                  budget_options=budget)
        info = RunInfo(record, TargetRecord(MODEL), harness_version="1")
        config = {**model_info(info), "device": "cuda:0", "model_num_parameters": 7_000_000,
                  "model_dtype": "torch.bfloat16"}
        write_results(root / folder, f"pretrained={MODEL}",
                      _metrics(score, rate, bits, settings.get("rate")),
                      extra_config=config, extra={"pretty_env_info": ENV_REPORT})
    return root
