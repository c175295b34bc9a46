"""Per-context search of a compression library's own rate parameter, warm-started.

A library such as ``llmlingua`` is asked for a rate in its own terms and misses the rate
counted in TARGET tokens. :func:`search_parameter` tunes the library's parameter per context;
:class:`RateModel` learns from the contexts searched before where the search should start.

Which attempt is accepted depends on where the search starts: several parameters usually land
within the tolerance, and certifying one of them by a rule that ignores the start (say, the
smallest) costs at least one more library call per context, twice a direct call. A warm
search is therefore deterministic for a given order of contexts, but the text of a context
can differ from a cold search's; callers record the start (``start_parameter``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

# The learned start keeps this far inside [lowest, 1]: a parameter at an end of the range
# tells the search nothing about the slope.
_START_MARGIN = 1e-3
# Ridge penalty of the two slope coefficients (the intercept is not penalised): with few
# contexts the model stays close to a constant ratio between achieved rate and parameter.
_SLOPE_PENALTY = 0.05
_FEATURES = 3


@dataclass(frozen=True)
class Attempt:
    """One library run: its parameter and the achieved TARGET rate."""

    parameter: float
    achieved: float


@dataclass(frozen=True)
class SearchResult:
    """Outcome of :func:`search_parameter`: the chosen output and how it was found."""

    text: str
    tokens: int
    parameter: float
    iterations: int
    start: float


@dataclass(frozen=True)
class ContextFeatures:
    """What is known of a context before compressing it."""

    requested_rate: float
    target_tokens: int
    library_tokens: int | None = None

    def vector(self) -> tuple[float, float, float]:
        """(1, log target tokens per library token, log requested rate)."""
        tokens_ratio = 0.0
        if self.library_tokens and self.target_tokens:
            tokens_ratio = math.log(self.target_tokens / self.library_tokens)
        return 1.0, tokens_ratio, math.log(max(self.requested_rate, 1e-6))


class RateModel:
    """``log(achieved / parameter) ~ w . features``, fitted on the contexts searched so far.

    Ridge regression on the accepted attempt of every context (an unpenalised intercept, so
    one context already sets the ratio). Untrained, the start is the requested rate.
    """

    def __init__(self) -> None:
        self._gram = [[0.0] * _FEATURES for _ in range(_FEATURES)]
        for index in range(1, _FEATURES):
            self._gram[index][index] = _SLOPE_PENALTY
        self._moment = [0.0] * _FEATURES
        self.contexts = 0

    def first_guess(self, features: ContextFeatures, lowest: float = 0.0) -> float:
        """The parameter expected to achieve ``features.requested_rate``."""
        if self.contexts == 0:
            return features.requested_rate
        weights = _solve(self._gram, self._moment)
        log_ratio = sum(w * x for w, x in zip(weights, features.vector(), strict=True))
        guess = features.requested_rate * math.exp(-log_ratio)
        return min(max(guess, lowest + _START_MARGIN), 1.0 - _START_MARGIN)

    def learn(self, features: ContextFeatures, result: SearchResult, original_tokens: int
              ) -> None:
        """Add the accepted attempt of one context (nothing to learn from an empty output)."""
        achieved = result.tokens / original_tokens
        if achieved <= 0 or result.parameter <= 0:
            return
        vector = features.vector()
        target = math.log(achieved / result.parameter)
        for row in range(_FEATURES):
            self._moment[row] += vector[row] * target
            for column in range(_FEATURES):
                self._gram[row][column] += vector[row] * vector[column]
        self.contexts += 1


def _solve(matrix: list[list[float]], vector: list[float]) -> list[float]:
    """``matrix^-1 vector`` by Gaussian elimination with partial pivoting."""
    size = len(vector)
    rows = [[*matrix[index], vector[index]] for index in range(size)]
    for column in range(size):
        pivot = max(range(column, size), key=lambda row: abs(rows[row][column]))
        rows[column], rows[pivot] = rows[pivot], rows[column]
        if abs(rows[column][column]) < 1e-12:
            continue
        for row in range(column + 1, size):
            factor = rows[row][column] / rows[column][column]
            for index in range(column, size + 1):
                rows[row][index] -= factor * rows[column][index]
    solution = [0.0] * size
    for row in reversed(range(size)):
        if abs(rows[row][row]) < 1e-12:
            continue
        known = sum(rows[row][index] * solution[index] for index in range(row + 1, size))
        solution[row] = (rows[row][size] - known) / rows[row][row]
    return solution


def search_parameter(
    run: Callable[[float], tuple[str, int]],
    requested_rate: float,
    original_tokens: int,
    start: float,
    max_iterations: int,
    tolerance: float,
    lowest: float = 0.0,
) -> SearchResult:
    """Tune a library's own rate parameter until the achieved TARGET rate is close enough.

    ``run(p)`` compresses with parameter ``p`` in ``[lowest, 1]`` and returns the text and
    its target-token count. Assuming the achieved rate grows with ``p``, the second attempt
    scales the first parameter by ``requested / achieved``; later ones interpolate between
    the closest attempts on either side of the requested rate (or the range's ends, taken
    as achieving 0 and 1). At most ``max_iterations`` runs, stopping once
    ``|achieved - requested| <= tolerance``; the closest run is returned.
    """
    start = min(max(start, lowest), 1.0)
    parameter = start
    below: Attempt | None = None
    above: Attempt | None = None
    best: SearchResult | None = None
    for iteration in range(1, max(1, max_iterations) + 1):
        text, tokens = run(parameter)
        achieved = tokens / original_tokens
        error = abs(achieved - requested_rate)
        if best is None or error < abs(best.tokens / original_tokens - requested_rate):
            best = SearchResult(text, tokens, parameter, iteration, start)
        if error <= tolerance:
            break
        # Every attempt after the first lies strictly between ``below`` and ``above``.
        attempt = Attempt(parameter, achieved)
        if achieved < requested_rate:
            below = attempt
        else:
            above = attempt
        parameter = _next_parameter(below, above, attempt, requested_rate, lowest)
    assert best is not None
    return best


def _next_parameter(below: Attempt | None, above: Attempt | None, last: Attempt,
                    requested_rate: float, lowest: float) -> float:
    """The next parameter strictly inside the bracket (see :func:`search_parameter`).

    It keeps 5% of the bracket away from an end that was not run (``lowest`` or 1), and
    0.1% from one that was.
    """
    low = below or Attempt(lowest, 0.0)
    high = above or Attempt(1.0, 1.0)
    span = high.parameter - low.parameter
    if (below is None or above is None) and last.achieved > 0:
        guess = last.parameter * requested_rate / last.achieved
    elif high.achieved - low.achieved <= 1e-9:
        guess = low.parameter + span / 2
    else:
        guess = low.parameter + (requested_rate - low.achieved) * span / (
            high.achieved - low.achieved)
    floor = low.parameter + span * (0.05 if below is None else 0.001)
    ceiling = high.parameter - span * (0.05 if above is None else 0.001)
    return min(max(guess, floor), ceiling)
