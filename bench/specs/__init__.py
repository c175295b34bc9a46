"""Benchmarks and metrics, each declared once (in :mod:`bench.specs.catalog`).

``bench.prepare``'s choices, the lm-eval task files (``python -m bench tasks --write``), the
task list, the sample records' metrics and the leaderboard's tables and plots all read the
declarations here; :func:`register` adds one, :func:`temporary_registry` scopes additions.
"""

from bench.specs.catalog import DEFAULT_STYLE, QA_GROUP
from bench.specs.registry import (
    benchmark,
    benchmarks,
    metric_names,
    metrics,
    register,
    temporary_registry,
)
from bench.specs.types import (
    SCORE_KINDS,
    BenchmarkKind,
    BenchmarkSpec,
    MetricKind,
    MetricSpec,
    MrqaSource,
    Pooling,
)

__all__ = [
    "DEFAULT_STYLE",
    "QA_GROUP",
    "SCORE_KINDS",
    "BenchmarkKind",
    "BenchmarkSpec",
    "MetricKind",
    "MetricSpec",
    "MrqaSource",
    "Pooling",
    "benchmark",
    "benchmarks",
    "metric_names",
    "metrics",
    "register",
    "temporary_registry",
]
