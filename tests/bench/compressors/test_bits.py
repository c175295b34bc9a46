"""``compressed_bits`` of every compressor on hand-computed cases."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from bench.compressors import CompressionRequest, TargetModel, build_compressor
from bench.compressors._llmzip_codec import FLUSH_BITS, SYMBOL_OVERHEAD_BITS, count_bits
from bench.compressors.bits import KEPT_FROM_TOKENS, BitCounter, soft_bits, subset_bits
from bench.records import CompressedEmbeddings, CompressedKV, CompressedText, CompressionStats
from bench.results_record import SampleRecord

from .conftest import CORPUS
from .test_llmzip import ideal_bits

CONTEXT = " ".join(CORPUS[:2])


def load_neural(folder: Path) -> TargetModel:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(folder)).eval()  # type: ignore[no-untyped-call]
    return TargetModel("tiny-target", AutoTokenizer.from_pretrained(str(folder)), model)


@pytest.fixture(scope="module")
def neural(target_model_dir: Path) -> TargetModel:
    return load_neural(target_model_dir)


def _stats(original: int, compressed: int) -> CompressionStats:
    return CompressionStats(original, compressed, 0.0)


def test_a_subset_costs_log2_of_the_binomial() -> None:
    assert subset_bits(10, 3) == math.log2(120)
    assert subset_bits(7, 7) == 0.0 and subset_bits(7, 0) == 0.0
    with pytest.raises(ValueError, match="3 of 2"):
        subset_bits(2, 3)


def test_soft_forms_cost_every_value_at_its_dtype() -> None:
    embeddings = CompressedEmbeddings(torch.zeros(4, 64, dtype=torch.bfloat16), _stats(50, 4))
    assert soft_bits(embeddings) == 4 * 64 * 16
    layers, kv_heads, slots, head_dim = 3, 2, 5, 8
    keys = tuple(torch.zeros(kv_heads, slots, head_dim, dtype=torch.float16)
                 for _ in range(layers))
    kv = CompressedKV(keys, keys, _stats(50, slots), slots)
    assert soft_bits(kv) == slots * layers * 2 * kv_heads * head_dim * 16


def test_text_costs_its_llmzip_code_length_with_the_target_model(neural: TargetModel) -> None:
    counter = BitCounter(neural)
    text = CORPUS[0]
    n_tokens, information = ideal_bits(neural, text)
    bits = counter(CompressedText(text, _stats(n_tokens, n_tokens)))
    assert bits is not None
    ideal = information + count_bits(n_tokens) + 1.0
    slack = n_tokens * SYMBOL_OVERHEAD_BITS
    assert ideal - slack <= bits <= ideal + FLUSH_BITS + slack
    assert bits % 32 == 0


def test_a_method_that_names_kept_positions_pays_for_them(neural: TargetModel) -> None:
    counter = BitCounter(neural)
    text = CORPUS[1][:40]
    k = neural.count_tokens(text)
    plain = counter(CompressedText(text, _stats(k, k)))
    named = counter(CompressedText(text, _stats(60, k), extra={KEPT_FROM_TOKENS: 60}))
    assert plain is not None and named is not None
    assert named - plain == pytest.approx(math.log2(math.comb(60, k)))


def test_an_exact_size_is_kept_and_text_without_a_model_has_none(target: TargetModel) -> None:
    counter = BitCounter(target)
    exact = CompressionStats(9, 9, 0.0, compressed_bits=416.0)
    assert counter(CompressedText("known", exact)) == 416.0
    assert counter(CompressedText("unknown", _stats(9, 9))) is None
    vectors = CompressedEmbeddings(torch.zeros(2, 8), _stats(9, 2))
    assert counter(vectors) == 2 * 8 * 32


@pytest.mark.parametrize(("name", "options"), [
    ("none", {}), ("zero_shot", {}), ("truncate", {"rate": 0.5}),
    ("random_drop", {"rate": 0.5, "seed": 3}), ("selective_context", {"rate": 0.5}),
])
def test_hard_compressors_cost_the_code_of_their_kept_text(
        neural: TargetModel, causal_compressor_dir: Path, name: str,
        options: dict[str, object]) -> None:
    if name == "selective_context":
        options = {**options, "compressor_model": str(causal_compressor_dir)}
    (result,) = build_compressor(name, neural, options).compress([CompressionRequest(CONTEXT)])
    assert isinstance(result, CompressedText)
    n_tokens, information = ideal_bits(neural, result.text)
    bits = BitCounter(neural)(result)
    assert bits is not None
    ideal = information + count_bits(n_tokens) + 1.0
    assert ideal - n_tokens * SYMBOL_OVERHEAD_BITS <= bits
    assert bits <= ideal + FLUSH_BITS + n_tokens * SYMBOL_OVERHEAD_BITS


def test_none_costs_what_llmzip_codes(neural: TargetModel) -> None:
    (kept,) = build_compressor("none", neural, {}).compress([CompressionRequest(CONTEXT)])
    (coded,) = build_compressor("llmzip", neural, {}).compress([CompressionRequest(CONTEXT)])
    assert coded.stats.compressed_bits is not None
    assert BitCounter(neural)(kept) == coded.stats.compressed_bits


@pytest.mark.parametrize(("name", "options", "form"), [
    ("500x", {"num_mem": 3, "layout": "compressbench"}, "kv"),
    ("icae", {"num_mem": 3, "variant": "500x-baseline"}, "embeddings"),
    ("cram", {"num_mem": 3, "steps": 1}, "embeddings"),
])
def test_soft_compressors_cost_k_slots_of_their_width(
        target_model_dir: Path, name: str, options: dict[str, object], form: str) -> None:
    neural = load_neural(target_model_dir)
    assert neural.model is not None
    config = neural.model.config
    (result,) = build_compressor(name, neural, options).compress([CompressionRequest(CONTEXT)])
    if form == "kv":
        head_dim = config.hidden_size // config.num_attention_heads
        width = config.num_hidden_layers * 2 * config.num_key_value_heads * head_dim
    else:
        width = config.hidden_size
    assert BitCounter(neural)(result) == 3 * width * 32


def test_records_report_bits_and_bits_per_original_token() -> None:
    record = SampleRecord(compression_ratio=0.25, original_tokens=12, compressed_tokens=3,
                          compress_seconds=0.0, answer_seconds=0.0, ttft_seconds=0.0,
                          generated_tokens=1, peak_rss_mb=1.0, flops_ratio=0.5,
                          compressed_bits=96.0)
    metrics = record.metrics()
    assert metrics["compressed_bits"] == 96.0 and metrics["bits_per_token"] == 8.0
    unsized = SampleRecord(1.0, 12, 12, 0.0, 0.0, 0.0, 1, 1.0, 1.0)
    assert "compressed_bits" not in unsized.metrics()
    assert "bits_per_token" not in unsized.metrics()


def test_a_model_that_cannot_code_text_leaves_text_unsized(
        target_model_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    from transformers import AutoTokenizer

    neural = load_neural(target_model_dir)
    tokenizer = AutoTokenizer.from_pretrained(str(target_model_dir))
    tokenizer.bos_token = None
    tokenizer.eos_token = None
    counter = BitCounter(TargetModel("no-specials", tokenizer, neural.model))
    with caplog.at_level("WARNING", logger="bench.compressors.bits"):
        assert counter(CompressedText(CORPUS[0], _stats(9, 9))) is None
        assert counter(CompressedText(CORPUS[1], _stats(9, 9))) is None
    assert caplog.text.count("neither a BOS nor an EOS token") == 1
    vectors = CompressedEmbeddings(torch.zeros(2, 8, dtype=torch.float16), _stats(9, 2))
    assert counter(vectors) == 2 * 8 * 16


def test_text_sizes_can_be_switched_off_without_losing_the_free_ones(
        neural: TargetModel) -> None:
    counter = BitCounter(neural, code_text=False)
    assert counter(CompressedText(CONTEXT, _stats(9, 9))) is None
    exact = CompressionStats(9, 9, 0.0, compressed_bits=416.0)
    assert counter(CompressedText(CONTEXT, exact)) == 416.0
    assert counter(CompressedEmbeddings(torch.zeros(2, 8), _stats(9, 2))) == 2 * 8 * 32
    assert BitCounter(neural)(CompressedText(CONTEXT, _stats(9, 9))) is not None


@pytest.mark.parametrize(("setting", "codes_text"), [
    (None, True), ("llmzip", True), ("LLMZIP", True), ("off", False)])
def test_the_compressed_bits_model_argument(setting: str | None, codes_text: bool) -> None:
    from bench.harness.answering import text_bits_setting

    assert text_bits_setting(setting) is codes_text


def test_an_unknown_compressed_bits_setting_is_one_clear_error() -> None:
    from bench.harness.answering import text_bits_setting

    with pytest.raises(ValueError, match=r"compressed_bits='exact' in --model_args: use "
                                         r"llmzip \(the default\) or off"):
        text_bits_setting("exact")
