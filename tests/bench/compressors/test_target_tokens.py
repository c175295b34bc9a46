"""``target_tokens``: the budget that is used is the one recorded, and one that does not
cut the context is flagged for the harness to count."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.compressors import CompressionRequest, TargetModel, build_compressor
from bench.compressors._hard_common import Budget
from bench.compressors.baselines import TARGET_TOKENS_EXCEED_CONTEXT, budget_settings
from bench.records import CompressedText

from .conftest import CORPUS


@pytest.mark.parametrize("name", ["truncate", "random_drop"])
def test_target_tokens_beyond_the_context_is_flagged(target: TargetModel, name: str) -> None:
    compressor = build_compressor(name, target, {"target_tokens": 10_000})
    assert "rate" not in compressor.settings()
    assert compressor.settings()["target_tokens"] == 10_000
    [kept] = compressor.compress([CompressionRequest(CORPUS[0])])
    original = target.count_tokens(CORPUS[0])
    assert kept.extra == {TARGET_TOKENS_EXCEED_CONTEXT: True}
    assert kept.stats.original_tokens == original and kept.stats.requested_rate == 1.0
    [at_length] = build_compressor(name, target, {"target_tokens": original}).compress(
        [CompressionRequest(CORPUS[0])])
    assert at_length.extra == {TARGET_TOKENS_EXCEED_CONTEXT: True}


@pytest.mark.parametrize("name", ["truncate", "random_drop"])
def test_a_cutting_budget_records_its_requested_rate(target: TargetModel, name: str) -> None:
    [cut] = build_compressor(name, target, {"target_tokens": 7}).compress(
        [CompressionRequest(CORPUS[1])])
    assert cut.extra == {}
    assert cut.stats.requested_rate == pytest.approx(7 / cut.stats.original_tokens)
    by_rate = build_compressor(name, target, {"rate": 0.25})
    assert by_rate.settings()["rate"] == 0.25
    [rated] = by_rate.compress([CompressionRequest(CORPUS[1])])
    assert rated.stats.requested_rate == 0.25 and rated.extra == {}


def test_budget_notes_and_settings(target: TargetModel) -> None:
    tokens = target.count_tokens(CORPUS[2])
    assert Budget.for_context(target, CORPUS[2], 0.5, tokens + 1).extra == {
        TARGET_TOKENS_EXCEED_CONTEXT: True}
    assert Budget.for_context(target, CORPUS[2], 0.5, tokens - 1).extra == {}
    assert Budget.for_context(target, CORPUS[2], 0.5, None).extra == {}
    assert budget_settings({"rate": 0.5, "target_tokens": 9}) == {"target_tokens": 9}
    assert budget_settings({"rate": 0.5, "target_tokens": None}) == {
        "rate": 0.5, "target_tokens": None}


def test_selective_context_flags_and_records_target_tokens(
        target: TargetModel, causal_compressor_dir: Path) -> None:
    compressor = build_compressor("selective_context", target, {
        "compressor_model": str(causal_compressor_dir), "target_tokens": 10_000})
    assert "rate" not in compressor.settings()
    [kept] = compressor.compress([CompressionRequest(CORPUS[3])])
    assert isinstance(kept, CompressedText)
    assert kept.text == CORPUS[3] and kept.extra == {TARGET_TOKENS_EXCEED_CONTEXT: True}
