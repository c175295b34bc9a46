"""ICAE v2 end to end through the stock ``lm_eval`` command with a released-format checkpoint.

The demo data is prepared in the tokens of the reference fixture's base model, which then
answers ``compressed_squad`` from the fine-tuned checkpoint's slots.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

from tests.bench.compressors.soft.reference_fixtures import case_ids, load_fixture
from tests.conftest import read_results, read_samples, run_stock_lm_eval

METHOD = "icae_v2"
TASK = "compressed_squad"


@pytest.mark.slow
def test_icae_v2_runs_in_stock_lm_eval(tmp_path: Path) -> None:
    if importlib.util.find_spec("bench.lmeval.compressed_model") is None:
        pytest.skip("bench.lmeval.compressed_model (the compressed lm-eval model) is not available")
    fixture = load_fixture(METHOD)
    case = fixture.case(case_ids(METHOD, "qa")[0])
    base = fixture.path / case["base_model"]
    checkpoint = fixture.path / case["checkpoint"]
    from bench.demo import prepare_demo_data

    data = tmp_path / "data"
    prepare_demo_data(base, data)
    out = tmp_path / "run"
    run_stock_lm_eval(f"pretrained={base},compressor=icae,variant=v2,checkpoint={checkpoint},"
                      "compression_cache=off", data, out, TASK)
    check_run(out, checkpoint, base)


def check_run(out: Path, checkpoint: Path, base: Path) -> None:
    from safetensors import safe_open
    from transformers import AutoTokenizer

    from bench.compressors.soft.icae_v2.checkpoint import MEMORY_KEY
    from bench.compressors.soft.icae_v2.compressor import IcaeV2Options
    from bench.compressors.soft.icae_v2.layout import PromptTokens, num_slots
    from bench.substrate.hashing import sha256_file

    results = read_results(out)
    settings: dict[str, Any] = results["config"]["compressbench"]["compressor"]["settings"]
    assert settings["variant"] == "v2" and settings["mode"] == "finetuned"
    assert settings["checkpoint_sha256"] == sha256_file(checkpoint)
    with safe_open(str(checkpoint), framework="pt") as handle:
        rows = handle.get_slice(MEMORY_KEY).get_shape()[0]
    assert settings["num_mem"] == rows - 3
    samples = read_samples(out, TASK)
    assert len(samples) == 2
    assert all(isinstance(sample["resps"][0][0], str) for sample in samples)
    tokenizer = AutoTokenizer.from_pretrained(str(base))
    bos = len(PromptTokens.from_tokenizer(tokenizer).with_bos([]))
    rate = IcaeV2Options().mean_compression_rate
    for sample in samples:
        encoder_tokens = int(sample["original_tokens"]) + bos
        assert sample["compressed_tokens"] == num_slots(encoder_tokens, settings["num_mem"], rate)
    slots = [sample["compressed_tokens"] for sample in samples]
    metrics = results["results"][TASK]
    assert metrics["compressed_tokens,none"] == pytest.approx(sum(slots) / len(slots))
