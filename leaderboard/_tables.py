"""The leaderboard's tables: raw scores, normalised scores, deltas and efficiency."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from leaderboard._errors import LeaderboardError
from leaderboard._metrics import (
    EFFICIENCY,
    QA_TASKS,
    REGENERATION_TASKS,
    MetricNames,
    normalise,
)
from leaderboard._runs import RowKey, TaskResult

Rows = Mapping[RowKey, Mapping[str, TaskResult]]

# Usage a server reported for each answer (rows answered by served models only).
SERVED_EFFICIENCY: tuple[tuple[str, str, str], ...] = (
    ("served_prompt_tokens", "served prompt tokens", "mean"),
    ("served_completion_tokens", "served completion tokens", "mean"),
)
EFFICIENCY_COLUMNS = (*EFFICIENCY, *SERVED_EFFICIENCY)


@dataclass(frozen=True)
class Cell:
    """A table cell: the value used for sorting and comparing, and its rendering."""

    value: float | str | None
    display: str

    @classmethod
    def number(cls, value: float | None, digits: int = 2, signed: bool = False) -> Cell:
        """A numeric cell; ``None`` shows as an empty cell."""
        if value is None or math.isnan(value):
            return cls(None, "")
        return cls(value, f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}")

    @classmethod
    def text(cls, value: str) -> Cell:
        """A text cell."""
        return cls(value, value)


@dataclass
class Table:
    """A named table with column titles, rows of cells and explanatory notes."""

    name: str
    title: str
    columns: list[str]
    rows: list[list[Cell]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _qa_present(rows: Rows) -> list[str]:
    return [task for task in QA_TASKS if any(task in tasks for tasks in rows.values())]


def _regen_present(rows: Rows) -> list[str]:
    return [task for task in REGENERATION_TASKS if any(task in tasks for tasks in rows.values())]


def _score(tasks: Mapping[str, TaskResult], task: str, metric: str) -> float | None:
    result = tasks.get(task)
    if result is None or metric not in result.metrics:
        return None
    return result.metrics[metric] * 100.0


def _mean(values: Sequence[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    return sum(present) / len(present) if present else None


def _head(key: RowKey) -> list[Cell]:
    return [Cell.text(key.model_label), Cell.text(key.label)]


def raw_scores(
    rows: Rows, names: MetricNames
) -> tuple[list[str], dict[RowKey, list[float | None]]]:
    """Column titles and x100 values of the raw table (without the two label columns)."""
    qa, regen = _qa_present(rows), _regen_present(rows)
    columns = [f"{QA_TASKS[t]} {m}" for t in qa for m in ("F1", "EM")]
    if qa:
        columns += ["Avg F1", "Avg EM"]
    columns += [f"{m} {REGENERATION_TASKS[t]}" for t in regen for m in ("Rouge-L-F", "BLEU")]
    values: dict[RowKey, list[float | None]] = {}
    for key, tasks in rows.items():
        f1 = [_score(tasks, t, names.f1) for t in qa]
        em = [_score(tasks, t, names.em) for t in qa]
        line: list[float | None] = [v for pair in zip(f1, em, strict=True) for v in pair]
        if qa:
            line += [_mean(f1), _mean(em)]
        for task in regen:
            line += [_score(tasks, task, names.rouge), _score(tasks, task, names.bleu)]
        values[key] = line
    return columns, values


def raw_table(rows: Rows, names: MetricNames) -> Table:
    """F1/EM per QA benchmark with their means, Rouge-L-F/BLEU per regeneration length."""
    columns, values = raw_scores(rows, names)
    table = Table("raw", "Raw scores (x100)", ["Model", "Compressor", *columns])
    for key, line in values.items():
        table.rows.append(_head(key) + [Cell.number(v) for v in line])
    qa = _qa_present(rows)
    incomplete = [
        f"{key.model_label} / {key.label}: {', '.join(QA_TASKS[t] for t in qa if t not in tasks)}"
        for key, tasks in rows.items()
        if any(t not in tasks for t in qa)
    ]
    table.notes.append(
        f"QA metrics: {names.f1}, {names.em}; regeneration: {names.rouge}, {names.bleu}."
    )
    if incomplete:
        table.notes.append(
            "Averages are over the benchmarks present; missing: " + "; ".join(incomplete)
        )
    return table


def _baseline_row(rows: Rows, model: str, compressor: str) -> RowKey:
    matches = [k for k in rows if k.model == model and compressor in (k.compressor, k.label)]
    if not matches:
        raise LeaderboardError(
            f"no baseline for base model {model!r}: add a run with compressor {compressor!r} "
            f"on {model!r} (e.g. --model_args pretrained={model},compressor={compressor})"
        )
    if len(matches) > 1:
        labels = ", ".join(k.label for k in matches)
        raise LeaderboardError(
            f"baseline {compressor!r} of {model!r} is ambiguous ({labels}): name it by its label"
        )
    return matches[0]


def normalised_table(rows: Rows, names: MetricNames, baseline: str = "none") -> Table | None:
    """Per QA benchmark score / the same base model's baseline score x 100, and the mean."""
    qa = _qa_present(rows)
    if not qa:
        return None
    columns = [f"{QA_TASKS[t]} {m}" for t in qa for m in ("F1", "EM")]
    table = Table(
        "normalised",
        f"Normalised scores (% of the same base model's {baseline!r} score)",
        ["Model", "Compressor", *columns, "Avg F1", "Avg EM", "Benchmarks"],
    )
    for key, tasks in rows.items():
        base = rows[_baseline_row(rows, key.model, baseline)]
        cells = _head(key)
        norm = {}
        for metric in (names.f1, names.em):
            scores = {t: v for t in qa if (v := _score(tasks, t, metric)) is not None}
            reference = {t: v for t in qa if (v := _score(base, t, metric)) is not None}
            norm[metric] = normalise(scores, reference)
        for task in qa:
            for metric in (names.f1, names.em):
                cells.append(Cell.number(norm[metric].ratios.get(task)))
        cells += [Cell.number(norm[names.f1].mean), Cell.number(norm[names.em].mean)]
        used = norm[names.f1].used
        cells.append(
            Cell.text("all" if len(used) == len(QA_TASKS) else ", ".join(QA_TASKS[t] for t in used))
        )
        table.rows.append(cells)
    table.notes.append(
        "Mean of per-benchmark ratios over the benchmarks present in both rows with a non-zero "
        "baseline score (column 'Benchmarks', by F1)."
    )
    return table


def delta_table(rows: Rows, names: MetricNames, baseline: str) -> Table:
    """Raw scores minus those of the same base model's ``baseline`` row, in points."""
    columns, values = raw_scores(rows, names)
    table = Table(
        "delta", f"Difference to {baseline!r} (points)", ["Model", "Compressor", *columns]
    )
    for key, line in values.items():
        reference = values[_baseline_row(rows, key.model, baseline)]
        deltas = [
            None if v is None or r is None else v - r for v, r in zip(line, reference, strict=True)
        ]
        table.rows.append(_head(key) + [Cell.number(d, signed=True) for d in deltas])
    return table


def efficiency_values(tasks: Mapping[str, TaskResult]) -> dict[str, float]:
    """Efficiency numbers of a row, from per-sample records where present, else aggregates."""
    out: dict[str, float] = {}
    for metric, _title, how in EFFICIENCY_COLUMNS:
        values: list[float] = []
        for result in tasks.values():
            per_sample = [
                float(s[metric]) for s in result.samples if isinstance(s.get(metric), int | float)
            ]
            if per_sample:
                values += per_sample
            elif metric in result.metrics:
                values += [result.metrics[metric]] * (result.n_samples or 1)
        if values:
            out[metric] = max(values) if how == "max" else sum(values) / len(values)
    return out


def efficiency_table(rows: Rows) -> Table | None:
    """Achieved compression, token counts, time and memory per row (all tasks pooled)."""
    values = {key: efficiency_values(tasks) for key, tasks in rows.items()}
    present = [m for m in EFFICIENCY_COLUMNS if any(m[0] in v for v in values.values())]
    if not present:
        return None
    titles = [title for _m, title, _h in present]
    table = Table(
        "efficiency", "Efficiency (per sample, all tasks)", ["Model", "Compressor", *titles]
    )
    if any(m[0] == "compression_ratio" for m in present):
        table.columns.insert(3, "compression (x)")
    for key, numbers in values.items():
        cells = _head(key)
        for metric, _title, _how in present:
            digits = 4 if metric.endswith("seconds") or metric.endswith("ratio") else 1
            cells.append(Cell.number(numbers.get(metric), digits))
            if metric == "compression_ratio":
                ratio = numbers.get(metric)
                cells.append(Cell.number(1.0 / ratio if ratio else None, 1))
        table.rows.append(cells)
    table.notes.append(
        "Means over samples (peak RSS: maximum); rate = compressed / original target tokens."
    )
    if any(m in present for m in SERVED_EFFICIENCY):
        table.notes.append(
            "Served prompt/completion tokens: the usage the API server reported per answer "
            "(an equal share when one call answered several prompts); answer s = call latency."
        )
    return table
