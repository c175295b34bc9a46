import math

import numpy as np
import pytest

from bench.compressors._rate_search import (
    ContextFeatures,
    RateModel,
    SearchResult,
    _solve,
    search_parameter,
)


@pytest.mark.parametrize("requested", [0.1, 0.25, 0.5, 0.8])
def test_search_lands_within_tolerance_on_a_biased_monotone_library(requested):
    calls: list[float] = []

    def run(parameter: float) -> tuple[str, int]:
        calls.append(parameter)
        achieved = min(1.0, 0.15 + 1.3 * parameter**1.5)  # a library that over-keeps
        return "x", round(achieved * 1000)

    found = search_parameter(run, requested, 1000, start=requested, max_iterations=8,
                             tolerance=0.01)
    assert abs(found.tokens / 1000 - requested) <= 0.01 or requested < 0.15
    assert found.iterations == len(calls) <= 8
    assert all(0.0 <= p <= 1.0 for p in calls)
    assert found.start == requested == calls[0]


def test_search_returns_closest_attempt_when_out_of_iterations():
    outcomes = {0.5: 700, }

    def run(parameter: float) -> tuple[str, int]:
        return f"{parameter}", outcomes.get(parameter, 900)

    found = search_parameter(run, 0.5, 1000, start=0.5, max_iterations=2, tolerance=0.0)
    assert found.text == "0.5" and found.tokens == 700 and found.iterations == 1


@pytest.mark.parametrize("ratio", [1.6, 0.5])
def test_second_attempt_scales_the_parameter_by_requested_over_achieved(ratio):
    calls: list[float] = []

    def run(parameter: float) -> tuple[str, int]:
        calls.append(parameter)
        return "x", round(ratio * parameter * 10_000)

    found = search_parameter(run, 0.4, 10_000, start=0.4, max_iterations=4, tolerance=0.001)
    assert calls == [0.4, pytest.approx(0.4 * 0.4 / (0.4 * ratio))]
    assert found.iterations == 2 and found.tokens == 4000


def test_solve_matches_numpy():
    matrix = [[4.0, 1.0, 0.5], [1.0, 3.0, -0.2], [0.5, -0.2, 2.0]]
    vector = [1.0, -2.0, 0.25]
    assert _solve(matrix, vector) == pytest.approx(np.linalg.solve(matrix, vector).tolist())


def _library_ratio(features: ContextFeatures) -> float:
    """A library keeping 1.5x the requested share, less where library tokens hold more text."""
    assert features.library_tokens is not None
    return 1.5 * math.pow(features.target_tokens / features.library_tokens, -0.8)


def _contexts(count: int) -> list[ContextFeatures]:
    return [ContextFeatures(0.3, 200 + (i * 53) % 100, 380 + (i * 37) % 90) for i in range(count)]


def test_untrained_model_starts_at_the_requested_rate():
    assert RateModel().first_guess(ContextFeatures(0.3, 100, 200)) == 0.3


def test_warm_start_learns_the_library_ratio_and_saves_calls():
    model = RateModel()
    warm_calls, cold_calls = [], []
    for features in _contexts(40):
        ratio = _library_ratio(features)
        tokens = features.target_tokens

        def run(parameter: float, ratio: float = ratio, tokens: int = tokens
                ) -> tuple[str, int]:
            return "x", round(min(1.0, ratio * parameter) * tokens)

        start = model.first_guess(features)
        warm = search_parameter(run, 0.3, tokens, start, max_iterations=6, tolerance=0.01)
        model.learn(features, warm, tokens)
        cold = search_parameter(run, 0.3, tokens, 0.3, max_iterations=6, tolerance=0.01)
        warm_calls.append(warm.iterations)
        cold_calls.append(cold.iterations)
    assert cold_calls == [2] * 40
    assert warm_calls[0] == 2 and warm_calls[20:] == [1] * 20
    last = _contexts(41)[-1]
    assert model.first_guess(last) == pytest.approx(0.3 / _library_ratio(last), rel=0.02)


def test_nothing_is_learned_from_an_empty_output():
    model = RateModel()
    features = ContextFeatures(0.3, 100, 200)
    model.learn(features, SearchResult("", 0, 0.2, 1, 0.3), 100)
    assert model.contexts == 0 and model.first_guess(features) == 0.3
    model.learn(features, SearchResult("x", 45, 0.2, 1, 0.3), 100)
    assert model.contexts == 1
    assert model.first_guess(features) == pytest.approx(0.3 * 0.2 / 0.45)
    assert math.isclose(model.first_guess(features, lowest=0.9), 0.9 + 1e-3)
