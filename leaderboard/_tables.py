"""The leaderboard's tables: raw scores, normalised scores, deltas and efficiency."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from bench.specs import MetricSpec
from leaderboard._baseline import Baseline, baseline_note, find_baseline
from leaderboard._bits import bits_per_byte, bits_per_token, floor_bits, has_bits
from leaderboard._columns import (
    BITS_COLUMNS,
    BITS_PER_BYTE,
    BITS_PER_TOKEN,
    COMPRESSION,
    FLOOR_BITS,
    TIMES_FLOOR,
    Column,
    count_column,
    mean_column,
    measured_column,
    score_column,
)
from leaderboard._metrics import (
    MetricNames,
    Normalised,
    efficiency_metrics,
    known_tasks,
    normalise,
    qa_tasks,
    regeneration_tasks,
    score_metrics,
    task_benchmarks,
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
    """A named table with column titles, rows of cells and explanatory notes.

    For the page's filters, ``keys`` holds the row identity of each row and ``benchmarks``
    the benchmark (its name in :mod:`bench.specs`) of each column that reads one benchmark's
    tasks, by column title; neither is exported.
    """

    name: str
    title: str
    columns: list[str]
    rows: list[list[Cell]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    keys: list[RowKey] = field(default_factory=list)
    benchmarks: dict[str, str] = field(default_factory=dict)


def build_table(name: str, title: str, rows: Rows, columns: Sequence[Column],
                cell: Callable[[RowKey, Column], Cell],
                head: Sequence[str] = ("Model", "Compressor")) -> Table:
    """A table of each row's model and compressor (columns titled ``head``), then its
    ``cell`` of each column."""
    table = Table(name, title, [*head, *(column.title for column in columns)])
    for key in rows:
        table.rows.append(_head(key) + [cell(key, column) for column in columns])
        table.keys.append(key)
    owners = task_benchmarks()
    for column in columns:
        benchmarks = {owners.get(task, "") for task in column.tasks}
        if len(benchmarks) == 1 and "" not in benchmarks:
            table.benchmarks[column.title] = benchmarks.pop()
    return table


def typed_cell(value: float | None, column: Column, hint: str = "") -> Cell:
    """``value`` shown with as many decimals as ``column`` gives it."""
    digits = column.digits if value is None else column.decimals(value)
    return Cell.number(value, digits, hint=hint)


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
    return qa_columns(rows, names, counts) + _regeneration_columns(rows, names, counts)


def qa_columns(rows: Rows, names: MetricNames, counts: bool) -> list[Column]:
    """F1/EM (and n) per QA benchmark present, then their means."""
    columns: list[Column] = []
    qa, titles = _qa_present(rows), qa_tasks()
    for task in qa:
        bench = titles[task]
        columns += [score_column(f"{bench} F1", names.f1, (task,), "questions"),
                    score_column(f"{bench} EM", names.em, (task,), "questions")]
        if counts:
            columns.append(count_column(f"{bench} n", task, "questions"))
    if qa:
        columns += [mean_column("Avg F1", names.f1, tuple(qa), "questions"),
                    mean_column("Avg EM", names.em, tuple(qa), "questions")]
    return columns


def _regeneration_columns(rows: Rows, names: MetricNames, counts: bool) -> list[Column]:
    """Rouge-L-F/BLEU (and n) per regeneration length present."""
    columns: list[Column] = []
    lengths = regeneration_tasks()
    for task in _regen_present(rows):
        length = lengths[task]
        columns += [score_column(f"Rouge-L-F {length}", names.rouge, (task,), "texts"),
                    score_column(f"BLEU {length}", names.bleu, (task,), "texts")]
        if counts:
            columns.append(count_column(f"n {length}", task, "texts"))
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


def score(tasks: Mapping[str, TaskResult], column: Column) -> tuple[float | None, float | None]:
    """The x100 value of ``column`` for one row and its standard error: for a mean over
    benchmarks, ``sqrt(sum of squared errors) / count`` (their questions are independent)."""
    present = [t for t in column.tasks if _score(tasks, t, column.key) is not None]
    if not present:
        return None, None
    values = [_score(tasks, t, column.key) or 0.0 for t in present]
    errors = [_stderr(tasks, t, column.key) for t in present]
    error = (
        math.sqrt(sum(e * e for e in errors if e is not None)) / len(present)
        if all(e is not None for e in errors)
        else None
    )
    return sum(values) / len(values), error


def _head(key: RowKey) -> list[Cell]:
    return [Cell.text(key.model_label), Cell.text(key.title)]


def _cell(tasks: Mapping[str, TaskResult], column: Column) -> Cell:
    if column.kind == "count":
        result = tasks.get(column.tasks[0])
        if result is None:
            return Cell(None, "")
        return Cell.count(result.n_samples, result.n_available, column.unit)
    value, error = score(tasks, column)
    used = [tasks[t].n_samples for t in column.tasks if t in tasks]
    n = sum(u for u in used if u is not None)
    hint = f"{column.key}, n = {n} {column.unit}" if n else column.key
    if error is not None:
        hint += f", standard error {error:.2f}"
    return Cell.number(value, stderr=error, hint=hint)


def raw_scores(
    rows: Rows, names: MetricNames
) -> tuple[list[Column], dict[RowKey, dict[Column, float | None]]]:
    """The score columns (without counts) and each row's x100 value of each."""
    columns = table_columns(rows, names, counts=False)
    values = {key: {c: score(tasks, c)[0] for c in columns} for key, tasks in rows.items()}
    return columns, values


def raw_table(rows: Rows, names: MetricNames) -> Table:
    """F1/EM per QA benchmark with their means, Rouge-L-F/BLEU per regeneration length, each
    with its standard error, and how many questions or texts each score averages."""
    table = build_table("raw", "Raw scores (x100, ± standard error)", rows,
                        table_columns(rows, names, counts=True),
                        lambda key, column: _cell(rows[key], column))
    remarks = {key: row_remarks(tasks) for key, tasks in rows.items()}
    if any(remarks.values()):
        table.columns.append("Notes")
        for cells, key in zip(table.rows, rows, strict=True):
            cells.append(Cell.text("; ".join(remarks[key])))
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
    norms = {key: _normalised(tasks, rows[bases[key.model].key], names, qa)
             for key, tasks in rows.items()}

    def ratio(key: RowKey, column: Column) -> Cell:
        norm = norms[key][column.key]
        return Cell.number(norm.mean if column.aggregation == "mean"
                           else norm.ratios.get(column.tasks[0]))

    table = build_table("normalised",
                        f"Normalised scores (% of the same base model's {baseline!r} score)",
                        rows, qa_columns(rows, names, counts=False), ratio)
    table.columns.append("Benchmarks")
    titles = qa_tasks()
    for cells, key in zip(table.rows, rows, strict=True):
        used = norms[key][names.f1].used
        cells.append(Cell.text(
            "all" if len(used) == len(titles)
            else ", ".join(titles[t] for t in used) or "none (see notes)"
        ))
    table.notes.append(
        "Mean of per-benchmark ratios over the benchmarks present in both rows with a non-zero "
        "baseline score (column 'Benchmarks', by F1); an empty cell has no such score."
    )
    table.notes += _zero_baseline_notes(rows, bases, names, qa)
    if note := baseline_note(bases, baseline):
        table.notes.append(note)
    return table


def _normalised(tasks: Mapping[str, TaskResult], base: Mapping[str, TaskResult],
                names: MetricNames, qa: Sequence[str]) -> dict[str, Normalised]:
    """A row's F1 and EM relative to its baseline row's, per QA task present."""
    norm = {}
    for metric in (names.f1, names.em):
        scores = {t: v for t in qa if (v := _score(tasks, t, metric)) is not None}
        reference = {t: v for t in qa if (v := _score(base, t, metric)) is not None}
        norm[metric] = normalise(scores, reference)
    return norm


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

    def delta(key: RowKey, column: Column) -> Cell:
        value, reference = values[key][column], values[bases[key.model].key][column]
        difference = None if value is None or reference is None else value - reference
        return Cell.number(difference, signed=True)

    table = build_table("delta", f"Difference to {baseline!r} (points)", rows, columns, delta)
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
            per_sample = [m[metric] for m in result.measurements if metric in m]
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
    columns = efficiency_columns(present)
    shown: dict[RowKey, dict[str, float | None]] = {
        key: {**numbers, COMPRESSION.key: _compression(numbers)} for key, numbers in values.items()}
    with_bits = has_bits(rows)
    if with_bits:
        columns += BITS_COLUMNS
        for key, tasks in rows.items():
            shown[key].update(_bits_values(rows, key, tasks))
    table = build_table("efficiency", "Efficiency (per sample, all tasks)", rows, columns,
                        lambda key, column: typed_cell(shown[key].get(column.key), column))
    table.notes.append(
        "Means over samples (peak RSS: maximum); rate = compressed / original target tokens."
    )
    if any(m.kind == "served" for m in present):
        table.notes.append(
            "Served prompt/completion tokens: the usage the API server reported per answer "
            "(an equal share when one call answered several prompts); answer s = call latency."
        )
    if with_bits:
        table.notes.append(BITS_NOTE)
    return table


def efficiency_columns(present: Sequence[MetricSpec]) -> list[Column]:
    """A column per measured metric, the compression factor right after the rate."""
    columns: list[Column] = []
    for spec in present:
        columns.append(measured_column(spec))
        if spec.name == "compression_ratio":
            columns.append(COMPRESSION)
    return columns


def _compression(numbers: Mapping[str, float]) -> float | None:
    ratio = numbers.get("compression_ratio")
    return 1.0 / ratio if ratio else None


def _bits_values(rows: Rows, key: RowKey, tasks: Mapping[str, TaskResult]
                 ) -> dict[str, float | None]:
    """Bits per original byte and per original token, the lossless floor on the same texts,
    and their ratio."""
    bits, floor = bits_per_token(tasks), floor_bits(rows, key)
    return {BITS_PER_BYTE.key: bits_per_byte(tasks), BITS_PER_TOKEN.key: bits,
            FLOOR_BITS.key: floor,
            TIMES_FLOOR.key: bits / floor if bits is not None and floor else None}


BITS_NOTE = (
    "Bits / original byte and bits / original token: the compressed form's size "
    "(compressed_bits: llmzip's code for llmzip, the llmzip code length of the kept text for "
    "hard methods, every stored value at its dtype's width for soft ones) summed over samples "
    "/ the UTF-8 bytes of their contexts (an axis no tokenizer shapes, so rows of different "
    "target models compare) or their original target tokens. Floor: the same base model's "
    "llmzip row on the same tasks, i.e. the texts coded losslessly (the physical limit for "
    "carrying them whole); x floor below 1 means the compressed form cannot hold all of the "
    "text."
)
