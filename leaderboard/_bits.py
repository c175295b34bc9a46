"""Bits per original token and per original byte of each row, and the lossless floor.

A row's bits per original token pools its samples: the sum of ``compressed_bits`` over the
sum of ``original_tokens`` (per-sample records where logged, else the task means times their
sample counts); its bits per original byte likewise divides by the summed ``original_bytes``
(the UTF-8 bytes of the contexts the compressor was given), an axis that no tokenizer shapes.
The floor of a row is that figure for the same base model's ``llmzip`` row (the lowest, when
there are several) over the tasks both rows ran: the size of the texts coded losslessly with
the target model, the physical limit for carrying them whole.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping

from leaderboard._runs import RowKey, TaskResult

FLOOR_COMPRESSOR = "llmzip"
BITS, TOKENS, BYTES = "compressed_bits", "original_tokens", "original_bytes"

Rows = Mapping[RowKey, Mapping[str, TaskResult]]


def _pooled(result: TaskResult, unit: str) -> tuple[float, float]:
    """(bits, original ``unit``) summed over the task's samples."""
    sized = [(m[BITS], m[unit]) for m in result.measurements if BITS in m and unit in m]
    if sized:
        return sum(b for b, _u in sized), sum(u for _b, u in sized)
    if BITS in result.metrics and unit in result.metrics:
        count = result.n_samples or 1
        return result.metrics[BITS] * count, result.metrics[unit] * count
    return 0.0, 0.0


def _bits_per(unit: str, tasks: Mapping[str, TaskResult],
              only: Iterable[str] | None) -> float | None:
    chosen = set(tasks) if only is None else set(only) & set(tasks)
    bits = amount = 0.0
    for task in sorted(chosen):
        task_bits, task_amount = _pooled(tasks[task], unit)
        bits += task_bits
        amount += task_amount
    return bits / amount if amount else None


def bits_per_token(tasks: Mapping[str, TaskResult],
                   only: Iterable[str] | None = None) -> float | None:
    """Pooled compressed bits per original token over ``tasks`` (or those named in ``only``)."""
    return _bits_per(TOKENS, tasks, only)


def bits_per_byte(tasks: Mapping[str, TaskResult],
                  only: Iterable[str] | None = None) -> float | None:
    """Pooled compressed bits per original UTF-8 byte over ``tasks`` (or those in ``only``)."""
    return _bits_per(BYTES, tasks, only)


def floor_bits(rows: Rows, key: RowKey) -> float | None:
    """llmzip's bits per token for ``key``'s model on the tasks both rows ran."""
    floors = [
        value
        for other, tasks in rows.items()
        if other.model == key.model and other.compressor == FLOOR_COMPRESSOR and not other.stock
        if (value := bits_per_token(tasks, rows[key])) is not None
    ]
    return min(floors) if floors else None


def byte_floors(rows: Rows, tasks: Collection[str]) -> dict[str, float]:
    """Per base model (by its label), llmzip's bits per original byte on ``tasks``."""
    floors: dict[str, float] = {}
    for key, results in rows.items():
        value = bits_per_byte(results, tasks)
        if key.compressor == FLOOR_COMPRESSOR and not key.stock and value:
            floors[key.model_label] = min(value, floors.get(key.model_label, value))
    return floors


def has_bits(rows: Rows) -> bool:
    """Whether any row knows the size of its compressed form."""
    return any(bits_per_token(tasks) is not None for tasks in rows.values())
