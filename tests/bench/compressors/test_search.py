import pytest

from bench.compressors._hard_common import search_parameter


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


def test_search_returns_closest_attempt_when_out_of_iterations():
    outcomes = {0.5: 700, }

    def run(parameter: float) -> tuple[str, int]:
        return f"{parameter}", outcomes.get(parameter, 900)

    found = search_parameter(run, 0.5, 1000, start=0.5, max_iterations=2, tolerance=0.0)
    assert found.text == "0.5" and found.tokens == 700 and found.iterations == 1
