"""``pisco`` through the stock ``lm_eval`` command with the fixture's checkpoint: the logged
answers, sizes and settings equal what the compressor gives in this process."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

from tests.bench.compressors.soft.pisco.test_parity_pisco import base_dir, load_base
from tests.bench.compressors.soft.reference_fixtures import case_ids, load_fixture
from tests.conftest import read_results, read_samples, run_stock_lm_eval

METHOD = "pisco"
TASK = "compressed_squad"
LIMIT = 2


@pytest.mark.slow
def test_pisco_answers_in_stock_lm_eval_equal_in_process(tmp_path: Path) -> None:
    if importlib.util.find_spec("bench.lmeval.compressed_model") is None:
        pytest.skip("bench.lmeval.compressed_model (the compressed lm-eval model) is not available")
    from bench.demo import prepare_demo_data

    fixture = load_fixture(METHOD)
    case = fixture.case(case_ids(METHOD, "qa")[0])
    base, checkpoint = base_dir(case), fixture.path / case["checkpoint"]
    data = tmp_path / "data"
    prepare_demo_data(base, data)
    out = tmp_path / "run"
    run_stock_lm_eval(f"pretrained={base},compressor=pisco,checkpoint={checkpoint},"
                      "compression_cache=off", data, out, TASK, limit=LIMIT)
    recorded = read_results(out)["config"]["compressbench"]["compressor"]
    samples = read_samples(out, TASK)
    assert len(samples) == LIMIT
    check_in_process(case, checkpoint, recorded, samples)


def check_in_process(case: dict[str, Any], checkpoint: Path, recorded: dict[str, Any],
                     samples: list[dict[str, Any]]) -> None:
    from bench.compressors._api import CompressionRequest
    from bench.compressors.soft.pisco.compressor import Pisco, make_pisco
    from bench.generation import DecoderPrompt
    from bench.harness.answering import settings_from_gen_kwargs
    from bench.records import CompressedEmbeddings

    compressor = make_pisco(load_base(case), {"checkpoint": str(checkpoint)})
    assert isinstance(compressor, Pisco)
    assert recorded["name"] == METHOD and recorded["family"] == "soft-embeddings"
    assert recorded["settings"] == compressor.settings()
    for sample in samples:
        doc = sample["doc"]
        context = window_cut(compressor, doc["context"], int(sample["original_tokens"]))
        compressed = compressor.compress([CompressionRequest(context)])[0]
        assert isinstance(compressed, CompressedEmbeddings)
        settings = settings_from_gen_kwargs(sample["arguments"]["gen_args_0"]["arg_1"], 0)
        prompt = DecoderPrompt("qa", "", "", doc["question"])
        answer = compressor.generate([(compressed, prompt)], settings)[0]
        assert sample["resps"][0][0] == answer.text
        assert sample["compressed_tokens"] == compressed.stats.compressed_tokens
        hidden = compressed.embeddings.shape[1]
        bits = compressed.stats.compressed_tokens * hidden * compressed.embeddings.element_size()
        assert sample["compressed_bits"] == 8 * bits


def window_cut(compressor: Any, context: str, tokens: int) -> str:
    """The context's first ``tokens`` target tokens, as the harness cuts a context to fit the
    model's window (the run records the tokens it kept as ``original_tokens``)."""
    encoded = compressor.target.tokenizer(context, add_special_tokens=False,
                                          return_offsets_mapping=True)
    if len(encoded["input_ids"]) <= tokens:
        return context
    return context[:encoded["offset_mapping"][tokens - 1][1]]
