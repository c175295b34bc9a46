"""A run reports requested beside achieved rates, and counts target_tokens that cut nothing."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bench.compressors.baselines import TARGET_TOKENS_EXCEED_CONTEXT
from bench.lmeval.run import run_lm_eval
from tests.conftest import read_samples


def test_target_tokens_beyond_every_context_is_counted_and_labelled(
        data_env: Path, tiny_model_dir: Path, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    args = f"tokenizer={tiny_model_dir},compressor=truncate,target_tokens=100000"
    with caplog.at_level(logging.WARNING, logger="bench.harness.answering"):
        results = run_lm_eval("compressed_reader", args, ("compressed_squad",), tmp_path,
                              limit=3, batch_size=1)
    info = results["config"]["compressbench"]
    assert info["compressor"]["settings"] == {"target_tokens": 100000}
    assert info[TARGET_TOKENS_EXCEED_CONTEXT] == {"compressed_squad": 3}
    assert "target_tokens not below the context's tokens" in caplog.text
    samples = read_samples(tmp_path, "compressed_squad")
    assert [(s["requested_rate"], s["compression_ratio"]) for s in samples] == [(1.0, 1.0)] * 3
    assert results["results"]["compressed_squad"]["requested_rate,none"] == 1.0


def test_a_rate_run_records_the_rate_asked_for_per_sample(
        data_env: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    args = f"tokenizer={tiny_model_dir},compressor=truncate,rate=0.5"
    results = run_lm_eval("compressed_reader", args, ("compressed_squad",), tmp_path,
                          limit=2, batch_size=1)
    assert results["config"]["compressbench"][TARGET_TOKENS_EXCEED_CONTEXT] == {}
    samples = read_samples(tmp_path, "compressed_squad")
    assert [s["requested_rate"] for s in samples] == [0.5, 0.5]
    assert all(s["compression_ratio"] < 1.0 for s in samples)
