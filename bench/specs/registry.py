"""The declared benchmarks and metrics, read by every stage when it needs them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from bench.specs.catalog import BENCHMARKS, METRICS, QA_GROUP
from bench.specs.types import BenchmarkKind, BenchmarkSpec, MetricKind, MetricSpec


@dataclass
class _Registry:
    benchmarks: list[BenchmarkSpec] = field(default_factory=list)
    metrics: list[MetricSpec] = field(default_factory=list)


_active = _Registry()


def register(spec: BenchmarkSpec | MetricSpec) -> None:
    """Declare a benchmark or metric; a name, task or metric declared before is refused."""
    if isinstance(spec, BenchmarkSpec):
        _refuse_taken("benchmark", spec.name, {b.name for b in _active.benchmarks})
        tasks = {QA_GROUP, *(task for b in _active.benchmarks
                             for task in (b.task, *b.task_lengths()))}
        for task in (spec.task, *spec.task_lengths()):
            _refuse_taken("task", task, tasks)
        _active.benchmarks.append(spec)
    else:
        _refuse_taken("metric", spec.name, {m.name for m in _active.metrics})
        _active.metrics.append(spec)


def _refuse_taken(what: str, name: str, taken: set[str]) -> None:
    if name in taken:
        raise ValueError(f"{what} {name!r} is already declared")


def benchmarks(*kinds: BenchmarkKind) -> tuple[BenchmarkSpec, ...]:
    """The declared benchmarks (of the given kinds), in declaration order."""
    return tuple(b for b in _active.benchmarks if not kinds or b.kind in kinds)


def benchmark(name: str) -> BenchmarkSpec:
    """The benchmark declared as ``name``; ``KeyError`` naming the declared ones if none."""
    for spec in _active.benchmarks:
        if spec.name == name:
            return spec
    known = ", ".join(spec.name for spec in _active.benchmarks)
    raise KeyError(f"no benchmark {name!r} is declared (declared: {known})")


def metrics(*kinds: MetricKind) -> tuple[MetricSpec, ...]:
    """The declared metrics (of the given kinds), in declaration order."""
    return tuple(m for m in _active.metrics if not kinds or m.kind in kinds)


def metric_names(*kinds: MetricKind) -> tuple[str, ...]:
    """The names of :func:`metrics`."""
    return tuple(spec.name for spec in metrics(*kinds))


@contextmanager
def temporary_registry() -> Iterator[None]:
    """Declarations made inside the block are forgotten when it ends."""
    global _active
    saved = _active
    _active = _Registry(list(saved.benchmarks), list(saved.metrics))
    try:
        yield
    finally:
        _active = saved


for _benchmark in BENCHMARKS:
    register(_benchmark)
for _metric in METRICS:
    register(_metric)
