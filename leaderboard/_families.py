"""Compressor families (baseline / hard / soft), for the plots' markers and legends."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from leaderboard._labels import unique_labels
from leaderboard._runs import Display, RowKey

BASELINE, HARD, SOFT, OTHER = "baseline", "hard", "soft", "other"
FAMILY_ORDER = (BASELINE, HARD, SOFT, OTHER)
FAMILY_TITLES = {
    BASELINE: "baselines (uncompressed, lossless)",
    HARD: "hard (text kept or dropped)",
    SOFT: "soft (learned vectors)",
    OTHER: "other compressors",
}
# one marker per family: square, circle, triangle, diamond
FAMILY_MARKERS = {BASELINE: "s", HARD: "o", SOFT: "^", OTHER: "D"}

_FAMILIES = {
    "none": BASELINE,
    "zero_shot": BASELINE,
    "llmzip": BASELINE,
    "truncate": HARD,
    "random_drop": HARD,
    "selective_context": HARD,
    "llmlingua": HARD,
    "longllmlingua": HARD,
    "llmlingua2": HARD,
    "500x": SOFT,
    "icae": SOFT,
    "cram": SOFT,
    "gist": SOFT,
    "autocompressor": SOFT,
}

# Settings that set how much is kept: rows that differ only in these lie on one curve.
BUDGET_SETTINGS = frozenset({"rate", "target_tokens", "num_mem", "num_gist_tokens"})


def family(key: RowKey) -> str:
    """The family of a row's compressor (a stock lm-eval run is a baseline)."""
    return BASELINE if key.stock else _FAMILIES.get(key.compressor, OTHER)


def curve_key(key: RowKey) -> RowKey:
    """The row without its budget settings: the curve (method) the row is a point of."""
    settings = tuple(item for item in key.settings if item[0] not in BUDGET_SETTINGS)
    return replace(key, settings=settings, display=Display())


def curve_keys(keys: Iterable[RowKey]) -> dict[RowKey, RowKey]:
    """Per row its curve, named so that no two curves of one model share a label."""
    rows = list(keys)
    curves = unique_labels(curve_key(key) for key in rows)
    return {key: curves[curve_key(key)] for key in rows}
