"""Choosing the row that a base model's other rows are compared with."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from leaderboard._errors import LeaderboardError
from leaderboard._runs import RowKey

UNCOMPRESSED = "none"


@dataclass(frozen=True)
class Baseline:
    """The reference row of one base model and why it was taken."""

    key: RowKey
    fallback: bool = False  # a stock lm-eval row standing in for a missing ``none`` row


def find_baseline(keys: Iterable[RowKey], model: str, name: str, flag: str) -> Baseline:
    """The row of ``model`` that ``name`` selects: a full label first, then a compressor or
    backend name. Without a ``none`` row, ``none`` falls back to the model's one stock
    lm-eval row (an uncompressed run too). ``flag`` is the option that named the baseline."""
    rows = sorted(key for key in keys if key.model == model)
    matches = [key for key in rows if key.label == name] or [
        key for key in rows if key.answers_to(name)
    ]
    if not matches and name == UNCOMPRESSED:
        stock = [key for key in rows if key.stock]
        if len(stock) == 1:
            return Baseline(stock[0], fallback=True)
    if not matches:
        available = ", ".join(repr(key.label) for key in rows)
        raise LeaderboardError(
            f"no baseline for base model {model!r}: {flag} {name!r} matches none of its rows "
            f"({available}); name one of those, or add a run with compressor {name!r} "
            f"(e.g. --model_args pretrained={model},compressor={name})"
        )
    if len(matches) > 1:
        labels = ", ".join(repr(key.label) for key in matches)
        raise LeaderboardError(
            f"{flag} {name!r} is ambiguous for base model {model!r}: it matches {labels}; "
            f"pass one of these labels"
        )
    return Baseline(matches[0])


def baseline_note(baselines: dict[str, Baseline], name: str) -> str | None:
    """A table note naming the rows used where a model's baseline was not literally ``name``."""
    fallbacks = [
        f"{base.key.model_label}: {base.key.label}"
        for base in baselines.values()
        if base.fallback
    ]
    if not fallbacks:
        return None
    return (
        f"No {name!r} row for these base models, so their stock lm-eval run (also uncompressed) "
        f"is the baseline: " + "; ".join(fallbacks) + "."
    )
