"""The leaderboard's tables: raw scores, normalised scores, deltas and efficiency."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from leaderboard._baseline import Baseline, baseline_note, find_baseline
from leaderboard._bits import bits_per_token, floor_bits, has_bits
from leaderboard._metrics import (
    MetricNames,
    efficiency_metrics,
    known_tasks,
    normalise,
    qa_tasks,
    regeneration_tasks,
    score_metrics,
)
from leaderboard._runs import RowKey, TaskResult

Rows = Mapping[RowKey, Mapping[str, TaskResult]]


@dataclass(frozen=True)
class Cell:
    """A table cell: the value used for sorting and comparing, its rendering, its standard
    error (if it has one) and a longer description shown on hover in the page."""

    value: float | str | None
    display: str
    stderr: float | None = None
    hint: str = ""

    @classmethod
    def number(
        cls,
        value: float | None,
        digits: int = 2,
        signed: bool = False,
        stderr: float | None = None,
        hint: str = "",
    ) -> Cell:
        """A numeric cell shown as ``value ± stderr``; ``None`` shows as an empty cell."""
        if value is None or math.isnan(value):
            return cls(None, "", hint=hint)
        text = f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"
        if stderr is not None and math.isfinite(stderr):
            return cls(value, f"{text} ± {stderr:.{digits}f}", stderr, hint)
        return cls(value, text, None, hint)

    @classmethod
    def count(cls, used: int | None, available: int | None, unit: str) -> Cell:
        """How many documents a score averages: ``used``, or ``used of available`` when
        lm-eval's ``--limit`` left some out."""
        if used is None:
            return cls(None, "")
        if available is not None and available > used:
            return cls(used, f"{used} of {available}",
                       hint=f"{used} of the task's {available} {unit} (--limit)")
        return cls(used, str(used), hint=f"{used} {unit}")

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


@dataclass(frozen=True)
class ScoreColumn:
    """A score column: one metric of one task, or its mean over several tasks."""

    title: str
    metric: str
    tasks: tuple[str, ...]
    unit: str


@dataclass(frozen=True)
class CountColumn:
    """How many questions or texts the scores of one task average."""

    title: str
    task: str
    unit: str


Column = ScoreColumn | CountColumn


def _qa_present(rows: Rows) -> list[str]:
    return [task for task in qa_tasks() if any(task in tasks for tasks in rows.values())]


def _regen_present(rows: Rows) -> list[str]:
    return [task for task in regeneration_tasks() if any(task in tasks for tasks in rows.values())]


def split_unknown_tasks(rows: Rows) -> tuple[Rows, dict[str, list[str]]]:
    """The rows without the tasks no benchmark is declared for (:mod:`bench.specs`), and
    those tasks with the rows that measured them."""
    known = known_tasks()
    unknown: dict[str, list[str]] = {}
    for key, tasks in rows.items():
        for task in tasks:
            if task not in known:
                unknown.setdefault(task, []).append(f"{key.model_label} / {key.title}")
    kept = {key: {t: r for t, r in tasks.items() if t in known} for key, tasks in rows.items()}
    return kept, dict(sorted(unknown.items()))


def unknown_tasks_note(unknown: Mapping[str, Sequence[str]]) -> str:
    """The note naming the tasks left out of every table."""
    listed = "; ".join(f"{task} ({', '.join(rows)})" for task, rows in unknown.items())
    return (f"Not in any table: {listed}: no benchmark is declared for these tasks "
            "(bench/specs), so their scores and efficiency numbers are left out.")


def table_columns(rows: Rows, names: MetricNames, counts: bool) -> list[Column]:
    """F1/EM (and n) per QA benchmark, their means, Rouge-L-F/BLEU (and n) per length."""
    columns: list[Column] = []
    qa, regen = _qa_present(rows), _regen_present(rows)
    titles, lengths = qa_tasks(), regeneration_tasks()
    for task in qa:
        bench = titles[task]
        columns += [ScoreColumn(f"{bench} F1", names.f1, (task,), "questions"),
                    ScoreColumn(f"{bench} EM", names.em, (task,), "questions")]
        if counts:
            columns.append(CountColumn(f"{bench} n", task, "questions"))
    if qa:
        columns += [ScoreColumn("Avg F1", names.f1, tuple(qa), "questions"),
                    ScoreColumn("Avg EM", names.em, tuple(qa), "questions")]
    for task in regen:
        length = lengths[task]
        columns += [ScoreColumn(f"Rouge-L-F {length}", names.rouge, (task,), "texts"),
                    ScoreColumn(f"BLEU {length}", names.bleu, (task,), "texts")]
        if counts:
            columns.append(CountColumn(f"n {length}", task, "texts"))
    return columns


def _score(tasks: Mapping[str, TaskResult], task: str, metric: str) -> float | None:
    result = tasks.get(task)
    if result is None or metric not in result.metrics:
        return None
    return result.metrics[metric] * 100.0


def _stderr(tasks: Mapping[str, TaskResult], task: str, metric: str) -> float | None:
    result = tasks.get(task)
    error = None if result is None else result.stderrs.get(metric)
    return None if error is None or not math.isfinite(error) else error * 100.0


def score(tasks: Mapping[str, TaskResult], column: ScoreColumn) -> tuple[float | None,
                                                                        float | None]:
    """The x100 value of ``column`` for one row and its standard error: for a mean over
    benchmarks, ``sqrt(sum of squared errors) / count`` (their questions are independent)."""
    present = [t for t in column.tasks if _score(tasks, t, column.metric) is not None]
    if not present:
        return None, None
    values = [_score(tasks, t, column.metric) or 0.0 for t in present]
    errors = [_stderr(tasks, t, column.metric) for t in present]
    error = (
        math.sqrt(sum(e * e for e in errors if e is not None)) / len(present)
        if all(e is not None for e in errors)
        else None
    )
    return sum(values) / len(values), error


def _head(key: RowKey) -> list[Cell]:
    return [Cell.text(key.model_label), Cell.text(key.title)]


def _cell(tasks: Mapping[str, TaskResult], column: Column) -> Cell:
    if isinstance(column, CountColumn):
        result = tasks.get(column.task)
        if result is None:
            return Cell(None, "")
        return Cell.count(result.n_samples, result.n_available, column.unit)
    value, error = score(tasks, column)
    used = [tasks[t].n_samples for t in column.tasks if t in tasks]
    n = sum(u for u in used if u is not None)
    hint = f"{column.metric}, n = {n} {column.unit}" if n else column.metric
    if error is not None:
        hint += f", standard error {error:.2f}"
    return Cell.number(value, stderr=error, hint=hint)


def raw_scores(
    rows: Rows, names: MetricNames
) -> tuple[list[str], dict[RowKey, list[float | None]]]:
    """Column titles and x100 values of the score columns (without labels and counts)."""
    columns = [c for c in table_columns(rows, names, counts=False) if isinstance(c, ScoreColumn)]
    values = {key: [score(tasks, c)[0] for c in columns] for key, tasks in rows.items()}
    return [c.title for c in columns], values


def raw_table(rows: Rows, names: MetricNames) -> Table:
    """F1/EM per QA benchmark with their means, Rouge-L-F/BLEU per regeneration length, each
    with its standard error, and how many questions or texts each score averages."""
    columns = table_columns(rows, names, counts=True)
    remarks = {key: row_remarks(tasks) for key, tasks in rows.items()}
    with_notes = any(remarks.values())
    table = Table(
        "raw",
        "Raw scores (x100, ± standard error)",
        ["Model", "Compressor", *(c.title for c in columns), *(["Notes"] if with_notes else [])],
    )
    for key, tasks in rows.items():
        cells = _head(key) + [_cell(tasks, column) for column in columns]
        if with_notes:
            cells.append(Cell.text("; ".join(remarks[key])))
        table.rows.append(cells)
    table.notes += raw_notes(rows, names)
    return table


ALL_ZERO = "all scores 0: smoke test"
LIMITED = "--limit: partial data"


def row_remarks(tasks: Mapping[str, TaskResult]) -> list[str]:
    """What a reader must know about a row before comparing its numbers."""
    remarks = []
    scored = score_metrics()
    scores = [
        value * 100.0
        for result in tasks.values()
        for metric, value in result.metrics.items()
        if metric in scored
    ]
    if scores and all(value == 0 for value in scores):
        remarks.append(ALL_ZERO)
    if any(_limited(result) for result in tasks.values()):
        remarks.append(LIMITED)
    return remarks


def _limited(result: TaskResult) -> bool:
    return (
        result.n_samples is not None
        and result.n_available is not None
        and result.n_available > result.n_samples
    )


def raw_notes(rows: Rows, names: MetricNames) -> list[str]:
    """The notes under the raw table."""
    notes = [
        f"QA metrics: {names.f1}, {names.em}; regeneration: {names.rouge}, {names.bleu}. "
        "± is lm-eval's standard error of the mean over the n questions (QA) or texts "
        "(regeneration) of a cell; averages over benchmarks combine them as "
        "sqrt(sum of squares) / count."
    ]
    if any(_limited(r) for tasks in rows.values() for r in tasks.values()):
        notes.append(f"'a of b' in an n column ('{LIMITED}'): lm-eval's --limit scored a of "
                     "the task's b documents; such rows are not comparable with complete ones.")
    if any(ALL_ZERO in row_remarks(tasks) for tasks in rows.values()):
        notes.append(f"'{ALL_ZERO}': the model answered nothing right (e.g. a randomly "
                     "initialised model), so the row only shows that the pipeline runs; it is "
                     "not a measurement of its compressor.")
    qa, titles = _qa_present(rows), qa_tasks()
    incomplete = [
        f"{key.model_label} / {key.title}: {', '.join(titles[t] for t in qa if t not in tasks)}"
        for key, tasks in rows.items()
        if any(t not in tasks for t in qa)
    ]
    if incomplete:
        notes.append("Averages are over the benchmarks present; missing: " + "; ".join(incomplete))
    if any(key.remark for key in rows):
        notes.append("'= none for this target': the target ignores the task instruction (the "
                     "lexical reader reads only context and question), which is all zero_shot "
                     "removes, so the row repeats none.")
    return notes


def _baselines(rows: Rows, name: str, flag: str) -> dict[str, Baseline]:
    models = sorted({key.model for key in rows})
    return {model: find_baseline(rows, model, name, flag) for model in models}


def normalised_table(rows: Rows, names: MetricNames, baseline: str = "none") -> Table | None:
    """Per QA benchmark score / the same base model's baseline score x 100, and the mean."""
    qa = _qa_present(rows)
    if not qa:
        return None
    bases = _baselines(rows, baseline, "--normalise-to")
    titles = qa_tasks()
    columns = [f"{titles[t]} {m}" for t in qa for m in ("F1", "EM")]
    table = Table(
        "normalised",
        f"Normalised scores (% of the same base model's {baseline!r} score)",
        ["Model", "Compressor", *columns, "Avg F1", "Avg EM", "Benchmarks"],
    )
    for key, tasks in rows.items():
        base = rows[bases[key.model].key]
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
        cells.append(Cell.text(
            "all" if len(used) == len(titles)
            else ", ".join(titles[t] for t in used) or "none (see notes)"
        ))
        table.rows.append(cells)
    table.notes.append(
        "Mean of per-benchmark ratios over the benchmarks present in both rows with a non-zero "
        "baseline score (column 'Benchmarks', by F1); an empty cell has no such score."
    )
    table.notes += _zero_baseline_notes(rows, bases, names, qa)
    if note := baseline_note(bases, baseline):
        table.notes.append(note)
    return table


def _zero_baseline_notes(
    rows: Rows, bases: Mapping[str, Baseline], names: MetricNames, qa: Sequence[str]
) -> list[str]:
    notes = []
    for base in bases.values():
        tasks = rows[base.key]
        f1 = [_score(tasks, t, names.f1) for t in qa]
        if not any(f1):
            notes.append(
                f"{base.key.model_label}: no ratios, because its baseline "
                f"{base.key.label!r} has no non-zero F1 (a model that answers nothing right "
                "cannot be a reference)."
            )
    return notes


def delta_table(rows: Rows, names: MetricNames, baseline: str) -> Table:
    """Raw scores minus those of the same base model's ``baseline`` row, in points."""
    columns, values = raw_scores(rows, names)
    bases = _baselines(rows, baseline, "--baseline-compressor")
    table = Table(
        "delta", f"Difference to {baseline!r} (points)", ["Model", "Compressor", *columns]
    )
    for key, line in values.items():
        reference = values[bases[key.model].key]
        deltas = [
            None if v is None or r is None else v - r for v, r in zip(line, reference, strict=True)
        ]
        table.rows.append(_head(key) + [Cell.number(d, signed=True) for d in deltas])
    table.notes.append(
        "Baseline rows: "
        + "; ".join(f"{b.key.model_label}: {b.key.label}" for b in bases.values())
        + "."
    )
    if note := baseline_note(bases, baseline):
        table.notes.append(note)
    return table


def efficiency_values(tasks: Mapping[str, TaskResult]) -> dict[str, float]:
    """Efficiency numbers of a row, from per-sample records where present, else aggregates."""
    out: dict[str, float] = {}
    for spec in efficiency_metrics():
        metric = spec.name
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
            out[metric] = max(values) if spec.pooling == "max" else sum(values) / len(values)
    return out


def efficiency_table(rows: Rows) -> Table | None:
    """Achieved compression, token counts, time and memory per row (all tasks pooled)."""
    values = {key: efficiency_values(tasks) for key, tasks in rows.items()}
    present = [m for m in efficiency_metrics() if any(m.name in v for v in values.values())]
    if not present:
        return None
    titles = [m.title for m in present]
    table = Table(
        "efficiency", "Efficiency (per sample, all tasks)", ["Model", "Compressor", *titles]
    )
    if any(m.name == "compression_ratio" for m in present):
        table.columns.insert(3, "compression (x)")
    for key, numbers in values.items():
        cells = _head(key)
        for metric in (m.name for m in present):
            digits = 4 if metric.endswith("seconds") or metric.endswith("ratio") else 1
            cells.append(Cell.number(numbers.get(metric), digits))
            if metric == "compression_ratio":
                ratio = numbers.get(metric)
                cells.append(Cell.number(1.0 / ratio if ratio else None, 1))
        table.rows.append(cells)
    table.notes.append(
        "Means over samples (peak RSS: maximum); rate = compressed / original target tokens."
    )
    if any(m.kind == "served" for m in present):
        table.notes.append(
            "Served prompt/completion tokens: the usage the API server reported per answer "
            "(an equal share when one call answered several prompts); answer s = call latency."
        )
    if has_bits(rows):
        add_bits_columns(table, rows)
    return table


BITS_COLUMNS = ("bits / original token", "floor: llmzip bits / token", "x floor")


def add_bits_columns(table: Table, rows: Rows) -> None:
    """Bits per original token, the lossless floor on the same texts, and their ratio."""
    table.columns += BITS_COLUMNS
    for cells, (key, tasks) in zip(table.rows, rows.items(), strict=True):
        bits, floor = bits_per_token(tasks), floor_bits(rows, key)
        cells += [Cell.number(bits, 3), Cell.number(floor, 3),
                  Cell.number(bits / floor if bits is not None and floor else None, 2)]
    table.notes.append(
        "Bits / original token: the compressed form's size (compressed_bits: llmzip's code "
        "for llmzip, the llmzip code length of the kept text for hard methods, every stored "
        "value at its dtype's width for soft ones) summed over samples / their original target "
        "tokens. Floor: the same base model's llmzip row on the same tasks, i.e. the texts "
        "coded losslessly (the physical limit for carrying them whole); x floor below 1 means "
        "the compressed form cannot hold all of the text."
    )
