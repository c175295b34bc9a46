"""The leaderboard's view of the declared benchmarks and metrics (:mod:`bench.specs`), and the
normalisation."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from bench import specs


def qa_tasks() -> dict[str, str]:
    """Task -> column title of every declared QA benchmark, in column order."""
    return {spec.task: spec.title for spec in specs.benchmarks("qa")}


def regeneration_tasks() -> dict[str, int]:
    """Task -> text length of every declared regeneration task, in column order."""
    return {task: length for spec in specs.benchmarks("regeneration")
            for task, length in spec.task_lengths().items() if length is not None}


def task_benchmarks() -> dict[str, str]:
    """Task -> the name of the declared benchmark it belongs to."""
    return {task: spec.name for spec in specs.benchmarks() for task in spec.task_lengths()}


def known_tasks() -> set[str]:
    """Every task the tables have columns for."""
    return {*qa_tasks(), *regeneration_tasks()}


@dataclass(frozen=True)
class MetricNames:
    """Which per-doc metric of the tasks fills which column."""

    f1: str
    em: str
    rouge: str
    bleu: str


# The score titles (bench.specs) the normalised table and the plots pair up.
_STYLE_ROLES: tuple[tuple[specs.MetricKind, str], ...] = (
    ("qa", "F1"), ("qa", "EM"), ("regeneration", "Rouge-L-F"), ("regeneration", "BLEU"))


def metric_styles() -> list[str]:
    """The ``--metric-style`` choices: every style a declared score has."""
    return sorted({spec.style for spec in specs.metrics(*specs.SCORE_KINDS)})


def metric_style(style: str) -> MetricNames:
    """The metrics of ``style`` that fill the F1, EM, Rouge-L-F and BLEU columns."""
    names = []
    for kind, title in _STYLE_ROLES:
        found = [m.name for m in specs.metrics(kind) if m.style == style and m.title == title]
        if not found:
            raise KeyError(f"metric style {style!r} declares no {kind} score titled {title!r}")
        names.append(found[0])
    return MetricNames(*names)


def score_metrics() -> frozenset[str]:
    """Every metric name that is a score (as opposed to an efficiency number), any style."""
    return frozenset(spec.name for spec in specs.metrics(*specs.SCORE_KINDS))


def efficiency_metrics() -> tuple[specs.MetricSpec, ...]:
    """The efficiency table's metrics: measured for every answer, then served usage."""
    return (*specs.metrics("efficiency"), *specs.metrics("served"))


@dataclass(frozen=True)
class Normalised:
    """Scores relative to a baseline (x100) and their plain mean."""

    ratios: dict[str, float | None]
    mean: float | None
    used: tuple[str, ...]


def normalise(scores: Mapping[str, float], baseline: Mapping[str, float]) -> Normalised:
    """Per benchmark ``score / baseline x 100``, then the mean of those ratios.

    Only benchmarks present in both and with a non-zero baseline enter the mean (the paper's
    Table 5 is the mean of ratios over its five QA benchmarks, not a ratio of means).
    """
    ratios: dict[str, float | None] = {}
    for bench, value in scores.items():
        base = baseline.get(bench)
        ratios[bench] = None if base is None or base == 0 else value / base * 100.0
    used = tuple(bench for bench, ratio in ratios.items() if ratio is not None)
    values = [ratio for ratio in ratios.values() if ratio is not None]
    mean = sum(values) / len(values) if values else None
    return Normalised(ratios, mean, used)
