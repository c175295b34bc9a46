import sys
from typing import Any, cast

import pytest

from bench.compressors._api import CompressionRequest, TargetModel, get_compressor_factory
from bench.compressors._hard_common import CompressorModelError, MissingDependencyError
from bench.compressors._rate_search import search_parameter
from bench.compressors.llmlingua_family import (
    LinguaCompressor,
    make_llmlingua,
    make_llmlingua2,
    make_longllmlingua,
)
from bench.records import CompressedText

from .conftest import CORPUS

CONTEXTS = [" ".join(CORPUS[:3]), " ".join(CORPUS[1:])]
QUESTION = "Where was the game played?"
FACTORIES = {"llmlingua": make_llmlingua, "longllmlingua": make_longllmlingua,
             "llmlingua2": make_llmlingua2}
# Tolerance of the per-context rate search (|achieved - requested| in target tokens).
TOLERANCE = 0.03


@pytest.fixture
def model_for(causal_compressor_dir, classifier_dir):
    return lambda method: str(classifier_dir if method == "llmlingua2" else causal_compressor_dir)


def build(method: str, target: TargetModel, model: str, **options: Any) -> LinguaCompressor:
    options = {"compressor_model": model, "tolerance": TOLERANCE, "max_iterations": 6, **options}
    return cast(LinguaCompressor, FACTORIES[method](target, options))


@pytest.mark.parametrize("method", sorted(FACTORIES))
def test_rate_in_target_tokens_and_determinism(method, target, model_for):
    compressor = build(method, target, model_for(method), rate=0.4)
    requests = [CompressionRequest(c, question=QUESTION, instruction="Answer.") for c in CONTEXTS]
    results = compressor.compress_text(requests)
    again = build(method, target, model_for(method), rate=0.4).compress_text(requests)
    assert [r.text for r in results] == [r.text for r in again]
    for context, result in zip(CONTEXTS, results, strict=True):
        assert isinstance(result, CompressedText)
        assert result.stats.original_tokens == target.count_tokens(context)
        assert result.stats.compressed_tokens == target.count_tokens(result.text)
        assert result.stats.requested_rate == 0.4
        assert abs(result.stats.achieved_rate - 0.4) <= TOLERANCE
        assert 1 <= result.extra["iterations"] <= 6
        assert "Answer." not in result.text and QUESTION not in result.text
    settings = compressor.settings()
    assert settings["compressor_model"] == model_for(method) and settings["rate"] == 0.4


def spy_library_calls(compressor: LinguaCompressor,
                      monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, dict[str, Any]]]:
    calls: list[tuple[Any, dict[str, Any]]] = []
    original = compressor._compressor.compress_prompt

    def spy(context: Any, **kwargs: Any) -> Any:
        calls.append((context, kwargs))
        return original(context, **kwargs)

    monkeypatch.setattr(compressor._compressor, "compress_prompt", spy)
    return calls


def test_longllmlingua_conditions_on_the_question_only(target, model_for, monkeypatch):
    compressor = build("longllmlingua", target, model_for("longllmlingua"), rate=0.4)
    calls = spy_library_calls(compressor, monkeypatch)
    asked = CompressionRequest(CONTEXTS[0], QUESTION, "Answer briefly.")
    [result] = compressor.compress_text([asked])
    assert calls and all(context == [CONTEXTS[0]] for context, _ in calls)
    for _, kwargs in calls:
        assert kwargs["question"] == QUESTION and kwargs["instruction"] == ""
        assert kwargs["rank_method"] == "longllmlingua" and kwargs["condition_compare"]
        assert kwargs["concate_question"] is False
    assert result.extra["question_aware"] is True
    other_question = CompressionRequest(CONTEXTS[0], "Which element has number 8?")
    [other] = compressor.compress_text([other_question])
    [without] = compressor.compress_text([CompressionRequest(CONTEXTS[0])])
    assert without.extra["question_aware"] is False
    assert len({result.text, other.text, without.text}) > 1


def test_llmlingua_ignores_the_question(target, model_for, monkeypatch):
    compressor = build("llmlingua", target, model_for("llmlingua"), rate=0.5)
    calls = spy_library_calls(compressor, monkeypatch)
    compressor.compress_text([CompressionRequest(CONTEXTS[0], QUESTION, "Answer.")])
    assert all(kwargs["question"] == "" and kwargs["rank_method"] == "llmlingua"
               for _, kwargs in calls)


@pytest.mark.parametrize("method", ["llmlingua", "llmlingua2"])
def test_target_tokens_and_trivial_budgets(method, target, model_for):
    [result] = build(method, target, model_for(method), target_tokens=20).compress_text(
        [CompressionRequest(CONTEXTS[0])])
    assert abs(result.stats.compressed_tokens - 20) <= TOLERANCE * result.stats.original_tokens
    [full] = build(method, target, model_for(method), rate=1.0).compress_text(
        [CompressionRequest(CONTEXTS[0])])
    assert full.text == CONTEXTS[0] and full.extra["iterations"] == 0


def test_wrong_model_kind_is_a_clear_error(target, causal_compressor_dir, classifier_dir):
    with pytest.raises(CompressorModelError, match=r"needs a token classifier.*causal language"):
        make_llmlingua2(target, {"compressor_model": str(causal_compressor_dir)})
    for factory in (make_llmlingua, make_longllmlingua):
        with pytest.raises(CompressorModelError, match="needs a causal language model"):
            factory(target, {"compressor_model": str(classifier_dir)})


def test_missing_llmlingua_names_the_extra(target, causal_compressor_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "llmlingua", None)
    monkeypatch.setitem(sys.modules, "llmlingua.prompt_compressor", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'compressbench\[hard\]'"):
        make_llmlingua(target, {"compressor_model": str(causal_compressor_dir)})


def test_unknown_option_is_an_error(target, causal_compressor_dir):
    with pytest.raises(ValueError, match="does not accept option"):
        make_llmlingua(target, {"compressor_model": str(causal_compressor_dir),
                                "use_sentence_level_filter": True})


def test_registered_under_their_names():
    for name, factory in FACTORIES.items():
        assert get_compressor_factory(name) is factory


ORDERED = [CompressionRequest(" ".join(CORPUS[i:i + 2]), question=QUESTION) for i in range(4)]


@pytest.mark.parametrize("method", sorted(FACTORIES))
def test_warm_start_is_recorded_and_repeats_for_the_same_order(method, target, model_for):
    first = build(method, target, model_for(method), rate=0.4).compress_text(ORDERED)
    again = build(method, target, model_for(method), rate=0.4).compress_text(ORDERED)
    assert [r.text for r in first] == [r.text for r in again]
    assert [r.extra for r in first] == [r.extra for r in again]
    requested = [r.stats.original_tokens for r in first]
    starts = [r.extra["start_parameter"] for r in first]
    cold = [round(0.4 * n) / n for n in requested]
    assert starts[0] == cold[0]
    # A warm start moves off the cold one once an earlier context's library parameter missed
    # its achieved rate; while every one hit it exactly, there is nothing to correct.
    missed = [r.stats.compressed_tokens / r.stats.original_tokens != r.extra["library_parameter"]
              for r in first]
    for index in range(1, len(first)):
        assert (starts[index] != cold[index]) == any(missed[:index]), index
    assert build(method, target, model_for(method), rate=0.4).settings()["warm_start"] is True


@pytest.mark.parametrize("method", sorted(FACTORIES))
def test_cold_search_gives_each_context_the_same_text_in_any_order(method, target, model_for):
    compressor = build(method, target, model_for(method), rate=0.4, warm_start=False)
    forward = compressor.compress_text(ORDERED)
    backward = build(method, target, model_for(method), rate=0.4,
                     warm_start=False).compress_text(ORDERED[::-1])[::-1]
    assert [r.text for r in forward] == [r.text for r in backward]
    for result in forward:
        n = result.stats.original_tokens
        assert result.extra["start_parameter"] == round(0.4 * n) / n
    assert compressor.settings()["warm_start"] is False


@pytest.mark.parametrize("method", sorted(FACTORIES))
def test_a_warm_text_is_the_search_from_its_recorded_start(method, target, model_for):
    """Warm and cold texts of one context may differ (several library parameters land within
    the tolerance and the search takes the first it finds); what decides is the recorded
    ``start_parameter``: searching from it again gives the same text."""
    warm = build(method, target, model_for(method), rate=0.4)
    results = warm.compress_text(ORDERED)
    replay = build(method, target, model_for(method), rate=0.4)
    for request, result in zip(ORDERED, results, strict=True):
        runner = replay._runner(request)
        n = result.stats.original_tokens
        found = search_parameter(runner.run, round(0.4 * n) / n, n,
                                 start=result.extra["start_parameter"], max_iterations=6,
                                 tolerance=TOLERANCE, lowest=runner.lowest)
        replay._passes.forget()
        assert (found.text, found.parameter) == (result.text, result.extra["library_parameter"])


@pytest.mark.parametrize("method", sorted(FACTORIES))
def test_passes_answered_from_memory_change_no_output(method, target, model_for):
    compressor = build(method, target, model_for(method), rate=0.4)
    for request in ORDERED[:2]:
        runner = compressor._runner(request)
        remembered = [runner.run(parameter) for parameter in (0.3, 0.5, 0.7)]
        fresh = []
        for parameter in (0.3, 0.5, 0.7):
            compressor._passes.forget()
            fresh.append(runner.run(parameter))
        compressor._passes.forget()
        assert remembered == fresh
