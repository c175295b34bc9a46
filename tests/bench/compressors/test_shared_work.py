"""Work done whatever the budget, shared by the compressors of one scope: loaded once, each
context scored once across rates, the texts of separate compressors; nothing shared outside."""

from collections.abc import Callable
from typing import Any

import pytest
import torch

from bench.compressors import CompressionRequest, TargetModel, build_compressor, shared_work
from bench.records import CompressedText

from .conftest import CORPUS

REQUESTS = [CompressionRequest(" ".join(CORPUS[i:i + 2]), question="Where was the game played?")
            for i in range(3)]
RATES = (0.5, 0.25)
# The scoring pass of each method: the module that a forward hook counts.
SCORING_MODULE: dict[str, Callable[[Any], torch.nn.Module]] = {
    "selective_context": lambda compressor: compressor._model,
    "llmlingua2": lambda compressor: compressor._passes.wrapped,
    "llmlingua": lambda compressor: compressor._passes.wrapped.wrapped,
}


@pytest.fixture
def model_for(causal_compressor_dir, classifier_dir) -> Callable[[str], str]:
    return lambda method: str(classifier_dir if method == "llmlingua2" else causal_compressor_dir)


def build(method: str, target: TargetModel, model: str, rate: float) -> Any:
    return build_compressor(method, target, {"compressor_model": model, "rate": rate})


def compress_counting(compressor: Any, method: str) -> tuple[list[CompressedText], int]:
    """The compressor's texts for REQUESTS and the scoring passes it ran for them."""
    passes = []
    hook = SCORING_MODULE[method](compressor).register_forward_hook(
        lambda *_: passes.append(1))
    try:
        return compressor.compress_text(REQUESTS), len(passes)
    finally:
        hook.remove()


def texts(results: list[CompressedText]) -> list[tuple[str, int]]:
    return [(result.text, result.stats.compressed_tokens) for result in results]


@pytest.mark.parametrize("method", ["selective_context", "llmlingua2"])
def test_in_a_scope_each_context_is_scored_once_across_rates(method, target, model_for):
    with shared_work() as work:
        swept = [compress_counting(build(method, target, model_for(method), rate), method)
                 for rate in RATES]
    alone = [build(method, target, model_for(method), rate).compress_text(REQUESTS)
             for rate in RATES]
    assert [texts(results) for results, _ in swept] == [texts(results) for results in alone]
    assert [result.extra for result in swept[1][0]] == [result.extra for result in alone[1]]
    assert swept[0][1] > 0 and swept[1][1] == 0
    assert work.reused == len(REQUESTS)


def test_reused_self_information_is_the_computed_one_exactly(target, causal_compressor_dir):
    alone = build("selective_context", target, str(causal_compressor_dir), RATES[1])
    with shared_work() as work:
        first, second = (build("selective_context", target, str(causal_compressor_dir), rate)
                         for rate in RATES)
        computed = [first.token_information(request.context) for request in REQUESTS]
        reused = [second.token_information(request.context) for request in REQUESTS]
    assert reused == computed == [alone._score_tokens(r.context) for r in REQUESTS]
    assert work.reused == len(REQUESTS)


def test_causal_llmlingua_shares_its_model_but_scores_each_rate_again(target, model_for):
    with shared_work() as work:
        first, second = (build("llmlingua", target, model_for("llmlingua"), rate)
                         for rate in RATES)
        first.compress_text(REQUESTS)
        swept, passes = compress_counting(second, "llmlingua")
    alone, alone_passes = compress_counting(build("llmlingua", target, model_for("llmlingua"),
                                                  RATES[1]), "llmlingua")
    assert (texts(swept), passes) == (texts(alone), alone_passes)
    assert first._compressor is second._compressor and work.reused == 0


def test_a_scope_holds_one_scoring_model_at_a_time(target, causal_compressor_dir,
                                                   target_model_dir):
    with shared_work():
        first, other, again = (build("selective_context", target, str(model), RATES[0])
                               for model in (causal_compressor_dir, target_model_dir,
                                             causal_compressor_dir))
    assert other._model is not first._model and again._model is not first._model


@pytest.mark.parametrize("method", ["selective_context", "llmlingua2"])
def test_outside_a_scope_each_compressor_loads_and_scores_its_own(method, target, model_for):
    with shared_work():
        inside = build(method, target, model_for(method), RATES[0])
    first, second = (build(method, target, model_for(method), rate) for rate in RATES)
    scoring = SCORING_MODULE[method]
    assert len({id(scoring(compressor)) for compressor in (inside, first, second)}) == 3
    _, passes = compress_counting(first, method)
    assert compress_counting(first, method)[1] == passes > 0
