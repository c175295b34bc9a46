"""Row names that tell rows apart: paths are shortened only as far as names stay unique.

A model shows as its folder's name and a setting's path as its last component, unless another
row would then show the same: those rows keep one more trailing component, and so on up to
the whole path. Rows whose names are the same even then (another compressor version, or
settings whose values contain ``, ``) get a tag: the version, or a hash of the identity.
The result depends only on the set of keys, never on their order.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import TypeVar

from leaderboard._runs import Display, RowKey, Run

Item = TypeVar("Item", bound=Hashable)


def unique_labels(keys: Iterable[RowKey]) -> dict[RowKey, RowKey]:
    """Each key with the shortest display under which no two models share a model label and
    no two rows of one model share a label."""
    rows = sorted(set(keys))
    model_depths = _depths(sorted({key.model for key in rows}), _model_label)
    label_depths = _depths(rows, _row_label)
    shown = [
        replace(key, display=Display(model_depths[key.model], label_depths[key])) for key in rows
    ]
    tags = _tags(shown)
    return {key: replace(key, display=replace(key.display, tag=tags.get(key, ""))) for key in shown}


def label_runs(runs: Sequence[Run]) -> list[Run]:
    """The runs with their row keys shown by :func:`unique_labels`."""
    shown = unique_labels(run.key for run in runs)
    return [replace(run, key=shown[run.key]) for run in runs]


def _model_label(model: str, depth: int) -> str:
    return RowKey(model, "", display=Display(model_depth=depth)).model_label


def _row_label(key: RowKey, depth: int) -> tuple[str, str]:
    return key.model, replace(key, display=Display(label_depth=depth)).label


def _depths(items: Sequence[Item], show: Callable[[Item, int], Hashable]) -> dict[Item, int]:
    """Per item how many path components its name keeps: one, and one more for each round
    in which its name is shared and a longer one exists."""
    depth = dict.fromkeys(items, 1)
    while True:
        shared = _shared({item: show(item, depth[item]) for item in items})
        longer = [item for item in shared if show(item, depth[item] + 1) != show(item, depth[item])]
        if not longer:
            return depth
        for item in longer:
            depth[item] += 1


def _shared(names: Mapping[Item, Hashable]) -> list[Item]:
    """The items whose name another item has too."""
    counts = Counter(names.values())
    return [item for item, name in names.items() if counts[name] > 1]


def _tags(keys: Sequence[RowKey]) -> dict[RowKey, str]:
    """Tags for rows of one model whose labels are the same at full length."""
    groups: dict[tuple[str, str], list[RowKey]] = {}
    for key in _shared({key: (key.model, key.label) for key in keys}):
        groups.setdefault((key.model, key.label), []).append(key)
    tags: dict[RowKey, str] = {}
    for group in groups.values():
        versions = {key.version for key in group}
        by_version = len(versions) == len(group) and "" not in versions
        for key in group:
            tags[key] = f"version {key.version}" if by_version else _identity_hash(key)
    return tags


def _identity_hash(key: RowKey) -> str:
    identity = [key.model, key.compressor, key.settings, key.version, key.stock]
    return "#" + hashlib.sha256(json.dumps(identity).encode("utf-8")).hexdigest()[:8]
