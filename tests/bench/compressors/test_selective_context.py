import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from bench.compressors._api import (
    CompressionRequest,
    TargetModel,
    get_compressor_factory,
    parse_options,
)
from bench.compressors._hard_common import CompressorModelError
from bench.compressors.selective_context import (
    SelectiveContext,
    SelectiveContextOptions,
    make_selective_context,
)
from bench.records import CompressedText

from .conftest import CORPUS

CONTEXTS = [" ".join(CORPUS[:3]), " ".join(CORPUS[2:]), CORPUS[0]]


def make(target: TargetModel, model_dir: Path, **options: Any) -> SelectiveContext:
    options = {"compressor_model": str(model_dir), **options}
    return SelectiveContext(target, parse_options(SelectiveContextOptions, options, "test"))


def compress(target: TargetModel, model_dir: Path, contexts: Sequence[str] = CONTEXTS,
             **options: Any) -> list[CompressedText]:
    compressor = make(target, model_dir, **options)
    return compressor.compress_text([CompressionRequest(c, question="Who won?") for c in contexts])


def is_subsequence(small: list[str], big: list[str]) -> bool:
    remaining = iter(big)
    return all(word in remaining for word in small)


@pytest.mark.parametrize("unit", ["token", "phrase", "sentence"])
def test_keeps_units_in_order_within_the_target_budget(target, causal_compressor_dir, unit):
    results = compress(target, causal_compressor_dir, unit=unit, rate=0.5)
    assert len(results) == len(CONTEXTS)
    for context, result in zip(CONTEXTS, results, strict=True):
        assert isinstance(result, CompressedText)
        stats = result.stats
        assert stats.original_tokens == target.count_tokens(context)
        assert stats.compressed_tokens == target.count_tokens(result.text)
        assert stats.requested_rate == 0.5
        assert 0 < stats.compressed_tokens <= round(0.5 * stats.original_tokens)
        assert stats.seconds > 0
        pattern = r"\w+|[^\w\s]" if unit == "token" else r"\S+"
        assert is_subsequence(re.findall(pattern, result.text), re.findall(pattern, context))


def test_token_level_rate_is_close_to_requested(target, causal_compressor_dir):
    for rate in (0.25, 0.5):
        for result in compress(target, causal_compressor_dir, rate=rate):
            assert abs(result.stats.achieved_rate - rate) <= 0.1


def test_original_spacing_is_kept(target, causal_compressor_dir):
    context = "Alpha beta,  gamma delta.\nEpsilon zeta eta theta."
    [result] = compress(target, causal_compressor_dir, [context], unit="sentence", rate=0.6)
    assert result.text in {"Alpha beta,  gamma delta.", "Epsilon zeta eta theta."}


def test_deterministic_across_instances(target, causal_compressor_dir):
    first = compress(target, causal_compressor_dir, unit="phrase", rate=0.4)
    second = compress(target, causal_compressor_dir, unit="phrase", rate=0.4)
    assert [r.text for r in first] == [r.text for r in second]


def test_drops_the_least_informative_units(target, causal_compressor_dir):
    compressor = make(target, causal_compressor_dir, unit="sentence", rate=0.4)
    context = CONTEXTS[0]
    from bench.compressors._hard_units import split_units

    spans = split_units(context, "sentence")
    infos = compressor.unit_information(context, spans)
    [result] = compressor.compress_text([CompressionRequest(context)])
    kept = [i for i, (a, b) in enumerate(spans) if context[a:b] in result.text]
    dropped = [i for i in range(len(spans)) if i not in kept]
    assert kept and dropped
    assert max(infos[i] for i in dropped) <= max(infos[i] for i in kept)


def test_target_tokens_and_edge_budgets(target, causal_compressor_dir):
    [result] = compress(target, causal_compressor_dir, CONTEXTS[:1], target_tokens=12)
    assert result.stats.compressed_tokens <= 12
    assert result.stats.requested_rate == pytest.approx(12 / result.stats.original_tokens)
    [full] = compress(target, causal_compressor_dir, CONTEXTS[:1], rate=1.0)
    assert full.text == CONTEXTS[0]
    [empty] = compress(target, causal_compressor_dir, CONTEXTS[:1], rate=0.0)
    assert empty.text == "" and empty.stats.compressed_tokens == 0
    [blank] = compress(target, causal_compressor_dir, [""], rate=0.5)
    assert blank.text == "" and blank.stats.achieved_rate == 1.0


@pytest.mark.parametrize("unit", ["token", "phrase", "sentence"])
def test_a_whitespace_context_compresses_to_nothing(target, causal_compressor_dir, unit):
    context = " \n\t  \n "
    [result] = compress(target, causal_compressor_dir, [context], unit=unit, rate=0.5)
    assert result.stats.original_tokens == target.count_tokens(context) > 0
    assert result.text == "" and result.stats.compressed_tokens == 0
    assert result.stats.requested_rate == 0.5 and result.stats.achieved_rate == 0.0


def test_long_context_is_scored_in_windows(target, causal_compressor_dir):
    compressor = make(target, causal_compressor_dir, max_window=16)
    windowed = compressor.token_information(CONTEXTS[0])
    full = make(target, causal_compressor_dir)
    whole = full.token_information(CONTEXTS[0])
    assert windowed[0] == whole[0]
    assert windowed[1][:8] == pytest.approx(whole[1][:8], abs=1e-4)
    assert all(info > 0 for info in windowed[1])
    assert compressor.settings()["max_window"] == 16


def test_rejects_a_token_classifier_and_bad_options(target, classifier_dir, causal_compressor_dir):
    with pytest.raises(CompressorModelError,
                       match=r"needs a causal language model.*token classifier"):
        make_selective_context(target, {"compressor_model": str(classifier_dir)})
    with pytest.raises(ValueError, match="does not accept option"):
        make_selective_context(target, {"compressor_model": str(causal_compressor_dir),
                                        "ratio": 0.5})
    with pytest.raises(ValueError, match="unit must be one of"):
        make_selective_context(target, {"compressor_model": str(causal_compressor_dir),
                                        "unit": "paragraph"})
    with pytest.raises(ValueError, match="rate"):
        make_selective_context(target, {"compressor_model": str(causal_compressor_dir),
                                        "rate": 2})


def test_registered_under_its_name():
    assert get_compressor_factory("selective_context") is make_selective_context
