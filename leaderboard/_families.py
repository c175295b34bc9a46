"""How the plots show compressor families (declared by each compressor when it registers and
recorded with its results), and which rows lie on one curve."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from bench.compressors import Family
from leaderboard._labels import unique_labels
from leaderboard._runs import Display, RowKey

FAMILY_ORDER = tuple(family.value for family in Family)
FAMILY_TITLES = {
    Family.BASELINE.value: "baselines (full context, no context)",
    Family.LOSSLESS.value: "lossless (entropy-coded text)",
    Family.HARD.value: "hard (text kept or dropped)",
    Family.SOFT_EMBEDDINGS.value: "soft (learned input vectors)",
    Family.SOFT_KV.value: "soft (learned KV cache)",
    Family.KV_EVICTION.value: "KV-cache eviction (presses)",
    Family.UNDECLARED.value: "family not declared",
}
# one marker per family: square, plus, circle, triangle up, triangle down, diamond, cross
FAMILY_MARKERS = {
    Family.BASELINE.value: "s",
    Family.LOSSLESS.value: "P",
    Family.HARD.value: "o",
    Family.SOFT_EMBEDDINGS.value: "^",
    Family.SOFT_KV.value: "v",
    Family.KV_EVICTION.value: "D",
    Family.UNDECLARED.value: "X",
}


def family(key: RowKey) -> str:
    """The family of a row's compressor, as recorded (an unknown one counts as undeclared)."""
    return key.family if key.family in FAMILY_MARKERS else Family.UNDECLARED.value


def curve_key(key: RowKey) -> RowKey:
    """The row without its budget settings: the curve (method) the row is a point of."""
    settings = tuple(item for item in key.settings if item[0] not in key.budget_options)
    return replace(key, settings=settings, display=Display())


def curve_keys(keys: Iterable[RowKey]) -> dict[RowKey, RowKey]:
    """Per row its curve, named so that no two curves of one model share a label."""
    rows = list(keys)
    curves = unique_labels(curve_key(key) for key in rows)
    return {key: curves[curve_key(key)] for key in rows}
