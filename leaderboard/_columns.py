"""The leaderboard's typed columns: what each numeric column shows and how it is read.

The tables are built from lists of :class:`Column` (:func:`leaderboard._tables.build_table`);
score columns come from the declared benchmarks and metrics (:mod:`bench.specs`), measured
ones from the declared metrics, and the few values derived from them are declared here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from bench import specs

# score: a task metric (x100); count: documents a score averages; efficiency, size, served:
# the kinds of measured metric (bench.specs); derived: computed from other columns' values.
ColumnKind = Literal["score", "count", "efficiency", "size", "served", "derived"]
# How a row's value combines its tasks or samples: their mean or maximum, sums divided
# (bits over tokens), or one value (one task's, or a ratio of other columns' values).
Aggregation = Literal["mean", "max", "pooled", "single"]


@dataclass(frozen=True)
class Column:
    """One numeric column of a table.

    ``key`` names the value it shows (a metric, or a value derived from metrics) and
    ``title`` heads it; ``digits`` is how many decimals it shows, or at least shows where
    ``max_digits`` is larger: then as many more as the value needs, up to ``max_digits``
    (a rate of 0.25 shows as 0.25, one of 0.125 as 0.125). A score or count column reads the
    tasks in ``tasks`` (``unit``: what their documents are, for its hints).
    """

    key: str
    title: str
    kind: ColumnKind
    aggregation: Aggregation
    lower_is_better: bool
    digits: int
    tasks: tuple[str, ...] = ()
    unit: str = ""
    max_digits: int = 0

    def decimals(self, value: float) -> int:
        """How many decimals ``value`` shows in this column: the fewest from ``digits`` on
        that show it as ``max_digits`` decimals would."""
        if self.max_digits <= self.digits or not math.isfinite(value):
            return self.digits
        finest = float(f"{value:.{self.max_digits}f}")
        return next(digits for digits in range(self.digits, self.max_digits + 1)
                    if float(f"{value:.{digits}f}") == finest)


def score_column(title: str, metric: str, tasks: tuple[str, ...], unit: str) -> Column:
    """One score metric of one task, or its mean over several tasks (x100, 2 decimals)."""
    if len(tasks) == 1:
        return Column(metric, title, "score", "single", False, 2, tasks, unit)
    return mean_column(title, metric, tasks, unit)


def mean_column(title: str, metric: str, tasks: tuple[str, ...], unit: str) -> Column:
    """The mean of one score metric over ``tasks`` (x100, 2 decimals)."""
    return Column(metric, title, "score", "mean", False, 2, tasks, unit)


def count_column(title: str, task: str, unit: str) -> Column:
    """How many questions or texts the scores of one task average."""
    return Column("n_samples", title, "count", "single", False, 0, (task,), unit)


# Kept fractions of the context: the achieved rate and the requested one.
RATES = frozenset({"compression_ratio", "requested_rate"})


def measured_column(spec: specs.MetricSpec) -> Column:
    """The column of a declared measured metric, pooled over a row's samples as the metric
    declares: rates to 2 decimals (up to 4 where 2 would round the value), other seconds and
    ratios to 4, the rest to 1."""
    kind, lower = _MEASURED[spec.kind], not spec.higher_is_better
    if spec.name in RATES:
        return Column(spec.name, spec.title, kind, spec.pooling, lower, 2, max_digits=4)
    digits = 4 if spec.name.endswith(("seconds", "ratio")) else 1
    return Column(spec.name, spec.title, kind, spec.pooling, lower, digits)


_MEASURED: dict[specs.MetricKind, ColumnKind] = {
    "efficiency": "efficiency", "size": "size", "served": "served"}


# Original / compressed tokens: the inverse of the mean compression_ratio.
COMPRESSION = Column("compression", "compression (x)", "derived", "single", False, 1)

BITS_PER_BYTE = Column("bits_per_byte", "bits / original byte", "size", "pooled", True, 3)
BITS_PER_TOKEN = Column("bits_per_token", "bits / original token", "size", "pooled", True, 3)
FLOOR_BITS = Column("floor_bits", "floor: llmzip bits / token", "size", "pooled", True, 3)
TIMES_FLOOR = Column("times_floor", "x floor", "derived", "single", True, 2)
BITS_COLUMNS = (BITS_PER_BYTE, BITS_PER_TOKEN, FLOOR_BITS, TIMES_FLOOR)
