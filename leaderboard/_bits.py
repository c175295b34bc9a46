"""Bits per original token of each row, and the lossless floor they are read against.

A row's bits per original token pools its samples: the sum of ``compressed_bits`` over the
sum of ``original_tokens`` (per-sample records where logged, else the task means times their
sample counts). The floor of a row is that figure for the same base model's ``llmzip`` row
(the lowest, when there are several) over the tasks both rows ran: the size of the texts coded
losslessly with the target model, the physical limit for carrying them whole.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from leaderboard._runs import RowKey, TaskResult

FLOOR_COMPRESSOR = "llmzip"
BITS, TOKENS = "compressed_bits", "original_tokens"

Rows = Mapping[RowKey, Mapping[str, TaskResult]]


def _pooled(result: TaskResult) -> tuple[float, float]:
    """(bits, original tokens) summed over the task's samples."""
    sized = [(m[BITS], m[TOKENS]) for m in result.measurements if BITS in m and TOKENS in m]
    if sized:
        return sum(b for b, _t in sized), sum(t for _b, t in sized)
    if BITS in result.metrics and TOKENS in result.metrics:
        count = result.n_samples or 1
        return result.metrics[BITS] * count, result.metrics[TOKENS] * count
    return 0.0, 0.0


def bits_per_token(tasks: Mapping[str, TaskResult],
                   only: Iterable[str] | None = None) -> float | None:
    """Pooled compressed bits per original token over ``tasks`` (or those named in ``only``)."""
    chosen = set(tasks) if only is None else set(only) & set(tasks)
    bits = tokens = 0.0
    for task in sorted(chosen):
        task_bits, task_tokens = _pooled(tasks[task])
        bits += task_bits
        tokens += task_tokens
    return bits / tokens if tokens else None


def floor_bits(rows: Rows, key: RowKey) -> float | None:
    """llmzip's bits per token for ``key``'s model on the tasks both rows ran."""
    floors = [
        value
        for other, tasks in rows.items()
        if other.model == key.model and other.compressor == FLOOR_COMPRESSOR and not other.stock
        if (value := bits_per_token(tasks, rows[key])) is not None
    ]
    return min(floors) if floors else None


def has_bits(rows: Rows) -> bool:
    """Whether any row knows the size of its compressed form."""
    return any(bits_per_token(tasks) is not None for tasks in rows.values())
