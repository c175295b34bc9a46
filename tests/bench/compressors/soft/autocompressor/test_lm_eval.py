"""``autocompressor`` through the stock ``lm_eval`` command, on the fixture checkpoint."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from tests.bench.compressors.soft.reference_fixtures import load_fixture
from tests.conftest import read_results, read_samples, run_stock_lm_eval

LIMIT = 2



def _has_compressed_model() -> bool:
    try:
        return importlib.util.find_spec("bench.lmeval.compressed_model") is not None
    except ModuleNotFoundError:
        return False


pytestmark = pytest.mark.skipif(
    not _has_compressed_model(),
    reason="the `compressed` lm-eval model (bench.lmeval.compressed_model) is not available",
)


@pytest.mark.slow
def test_compressed_squad_with_the_stock_cli(tmp_path: Path) -> None:
    pytest.importorskip("sentencepiece")
    from bench.demo import prepare_demo_data

    checkpoint = load_fixture("autocompressor").path / "checkpoint"
    config = json.loads((checkpoint / "config.json").read_text("utf-8"))
    data = tmp_path / "data"
    prepare_demo_data(checkpoint, data)
    out = tmp_path / "out"
    run_stock_lm_eval(f"pretrained={checkpoint},compressor=autocompressor,compression_cache=off",
                      data, out, limit=LIMIT)
    results = read_results(out)
    squad = results["results"]["compressed_squad"]  # type: ignore[index]
    assert squad["compressed_tokens,none"] == config["summary_length"]
    compressor = results["config"]["compressbench"]["compressor"]  # type: ignore[index]
    assert compressor["name"] == "autocompressor"
    assert compressor["settings"]["summary_length"] == config["summary_length"]
    samples = read_samples(out, "compressed_squad")
    assert len(samples) == LIMIT
    assert all(isinstance(sample["resps"][0][0], str) for sample in samples)
