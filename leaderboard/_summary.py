"""The page's summary table: per base model, method and rate, how much of the full-context
score a method keeps (retention) and its mean scores, at the rate and size it achieved.

It is built from the same rows as the exported tables and is shown on the page only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from leaderboard._baseline import find_baseline
from leaderboard._bits import bits_per_byte, has_bits
from leaderboard._columns import BITS_PER_BYTE, Column, mean_column
from leaderboard._errors import LeaderboardError
from leaderboard._families import FAMILY_ORDER, curve_keys, family
from leaderboard._metrics import MetricNames, normalise, qa_tasks, regeneration_tasks
from leaderboard._plots import byte_panels
from leaderboard._runs import RowKey, TaskResult
from leaderboard._tables import Cell, Rows, Table, build_table, efficiency_values, score, typed_cell

RATE = Column("compression_ratio", "rate", "efficiency", "mean", True, 2, max_digits=4)
RETENTION = Column("retention", "retention %", "derived", "mean", False, 1)


def achieved_rate(key: RowKey, tasks: Mapping[str, TaskResult]) -> float | None:
    """Compressed / original target tokens over the row's samples (1 for a stock lm-eval run,
    which sees the whole context)."""
    rate = efficiency_values(tasks).get(RATE.key)
    return rate if rate is not None else 1.0 if key.stock else None


def summary_columns(rows: Rows, names: MetricNames) -> list[Column]:
    """Rate, retention, the mean QA F1 and mean Rouge-L-F over what the rows ran, and bits per
    byte where a row knows its size."""
    ran = {task for tasks in rows.values() for task in tasks}
    qa = tuple(task for task in qa_tasks() if task in ran)
    lengths = tuple(task for task in regeneration_tasks() if task in ran)
    columns = [RATE, RETENTION]
    if qa:
        columns.append(mean_column("QA F1", names.f1, qa, "questions"))
    if lengths:
        columns.append(mean_column("Rouge-L-F", names.rouge, lengths, "texts"))
    return columns + ([BITS_PER_BYTE] if has_bits(rows) else [])


def _baselines(rows: Rows, name: str) -> dict[str, RowKey]:
    """Per base model, its row that ``name`` selects (models without one are left out)."""
    found = {}
    for model in sorted({key.model for key in rows}):
        try:
            found[model] = find_baseline(rows, model, name, "--normalise-to").key
        except LeaderboardError:
            continue
    return found


def retention(tasks: Mapping[str, TaskResult], base: Mapping[str, TaskResult],
              names: MetricNames) -> tuple[float | None, list[str]]:
    """The mean over benchmarks of score / baseline score x 100 (F1, or mean Rouge-L-F over
    the regeneration lengths both rows ran), over those with a non-zero baseline score; and
    their titles."""
    scores, reference, titles = {}, {}, {}
    for panel in byte_panels(names):
        column = replace(panel.column,
                         tasks=tuple(t for t in panel.column.tasks if t in tasks and t in base))
        value, reference_value = score(tasks, column)[0], score(base, column)[0]
        if value is not None and reference_value is not None:
            scores[panel.name], reference[panel.name] = value, reference_value
            titles[panel.name] = panel.title
    kept = normalise(scores, reference)
    return kept.mean, [titles[name] for name in kept.used]


def _order(curves: Mapping[RowKey, RowKey], rates: Mapping[RowKey, float | None]
           ) -> list[RowKey]:
    """Rows by model, family, method, then from the largest rate to the smallest."""
    def place(key: RowKey) -> tuple[str, int, str, float]:
        rate = rates[key]
        return (key.model_label, FAMILY_ORDER.index(family(key)), curves[key].title,
                -(rate if rate is not None else -1.0))
    return sorted(curves, key=place)


def summary_table(rows: Rows, names: MetricNames, baseline: str) -> Table:
    """Per row (ordered by model, family, method and rate), its rate, retention against the
    same base model's ``baseline`` row, mean scores and bits per byte."""
    columns = summary_columns(rows, names)
    bases = _baselines(rows, baseline)
    rates = {key: achieved_rate(key, tasks) for key, tasks in rows.items()}
    kept = {key: retention(tasks, rows[bases[key.model]], names)
            for key, tasks in rows.items() if key.model in bases}

    def cell(key: RowKey, column: Column) -> Cell:
        if column == RATE:
            return typed_cell(rates[key], RATE, "compressed / original target tokens")
        if column == RETENTION:
            value, used = kept.get(key, (None, []))
            return typed_cell(value, RETENTION, "of the full-context score, mean over "
                              + (", ".join(used) or "no benchmark"))
        if column == BITS_PER_BYTE:
            return typed_cell(bits_per_byte(rows[key]), BITS_PER_BYTE)
        value, error = score(rows[key], column)
        spread = "" if error is None else f", standard error {error:.2f}"
        return typed_cell(value, column, f"{column.key}, mean over {len(column.tasks)} "
                          f"{'tasks' if len(column.tasks) > 1 else 'task'}{spread}")

    ordered = {key: rows[key] for key in _order(curve_keys(rows), rates)}
    table = build_table("summary", "Summary: retention and score per method and rate", ordered,
                        columns, cell, head=("Model", "Method"))
    table.notes += summary_notes(rows, bases, baseline, columns)
    return table


def summary_notes(rows: Rows, bases: Mapping[str, RowKey], baseline: str,
                  columns: Sequence[Column]) -> list[str]:
    """What each column of the summary means, and the models it has no retention for."""
    notes = [
        "rate: compressed / original target tokens, mean over samples (1 for a stock lm-eval "
        f"run, which sees the whole context). retention: per benchmark, the score / the same "
        f"base model's {baseline!r} score x 100 (F1; for regeneration the mean Rouge-L-F over "
        "its lengths), averaged over the benchmarks where that score is not 0. The score "
        "columns average the benchmarks or lengths present (x100)."
    ]
    if BITS_PER_BYTE in columns:
        notes.append("bits / original byte: the compressed form's size per UTF-8 byte of "
                     "the contexts (see the efficiency table).")
    missing = sorted({key.model_label for key in rows if key.model not in bases})
    if missing:
        notes.append(f"No retention for {', '.join(missing)}: no {baseline!r} row (nor one "
                     "stock lm-eval run) to compare with.")
    return notes
