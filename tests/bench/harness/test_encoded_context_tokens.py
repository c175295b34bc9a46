"""A soft compressor that reads fewer of a context's tokens than it has: each sample records
how many it read, and the run counts the cut samples per task with a warning."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bench.lmeval.run import run_lm_eval
from bench.results_record import parse_run_info
from tests.conftest import read_samples

READ = 8


def test_contexts_cut_by_the_compressor_are_recorded_per_sample_and_counted(
        data_env: Path, tiny_model_dir: Path, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    args = (f"pretrained={tiny_model_dir},compressor=500x,num_mem=2,"
            f"max_context_tokens={READ},compression_cache=off,compressed_bits=off")
    with caplog.at_level(logging.WARNING, logger="bench.harness.answering"), \
            pytest.warns(UserWarning, match="no checkpoint"):
        results = run_lm_eval("compressed", args, ("compressed_squad",), tmp_path, limit=3)
    samples = read_samples(tmp_path, "compressed_squad")
    assert [s["encoded_context_tokens"] for s in samples] == [READ] * 3
    assert all(s["original_tokens"] > READ for s in samples)
    info = results["config"]["compressbench"]
    assert info["contexts_cut_by_compressor"] == {"compressed_squad": 3}
    recorded = parse_run_info(results["config"], "results.json")
    assert recorded is not None
    assert recorded.contexts_cut_by_compressor == {"compressed_squad": 3}
    assert results["results"]["compressed_squad"]["encoded_context_tokens,none"] == READ
    assert "500x: contexts longer than it encodes were cut" in caplog.text
    assert "compressed_squad: 3" in caplog.text
