"""Date windows, de-duplication and the seeded dev/test selection with the overlap audit.

The train split is never held: ids are merged as the sorted runs stream by
(:func:`merge_ids`), duplicate abstracts are found from digests (:class:`AbstractIndex`)
and the audit streams the train texts once per batch of candidates (:func:`select_eval`).
"""

from __future__ import annotations

import hashlib
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

import numpy as np

from bench.substrate.errors import InputError
from data_builders.arxiv.overlap import Overlap, audit
from data_builders.arxiv.records import Paper
from data_builders.arxiv.runs import Spilled


@dataclass(frozen=True)
class Windows:
    """``train`` = [train_after, train_before); ``eval`` (dev+test) = [after, before)."""

    train_before: date
    after: date
    train_after: date | None = None
    before: date | None = None

    def __post_init__(self) -> None:
        if self.after < self.train_before:
            raise InputError(
                f"--after {self.after} is before --train-before {self.train_before}: "
                "dev/test would overlap the train period"
            )
        if self.before is not None and self.before <= self.after:
            raise InputError(f"--before {self.before} must be after --after {self.after}")
        if self.train_after is not None and self.train_after >= self.train_before:
            raise InputError("--train-after must be before --train-before")

    def of(self, published: date) -> str | None:
        """``"train"``, ``"eval"`` or None (outside both windows)."""
        if published < self.train_before:
            return None if self.train_after and published < self.train_after else "train"
        if published >= self.after and (self.before is None or published < self.before):
            return "eval"
        return None


def _newer(current: Paper, candidate: Paper) -> Paper:
    """Merge two records of one id: the earliest date, the text of the latest version."""
    keep = candidate if candidate.version > current.version else current
    return replace(keep, published=min(current.published, candidate.published))


def merge_ids(groups: Iterable[Sequence[Spilled]], windows: Windows, counts: Counter[str]
              ) -> Iterator[tuple[Paper, str]]:
    """One paper per id, with its window (``"train"``/``"eval"``), from the records of each
    id in input order (:meth:`SortedRuns.groups`).

    Records inside a window merge (earliest date, text of the latest version, the earlier
    record on a tie); a record outside both windows can only move the date earlier, which
    may move the paper out of its window. Counted: ``duplicate_ids_merged`` for every record
    merged into another, ``outside_dates`` for every id left outside.
    """
    for group in groups:
        kept: Paper | None = None
        outside: date | None = None
        for item in group:
            if not item.in_window:
                published = item.paper.published
                outside = published if outside is None else min(outside, published)
            elif kept is None:
                kept = item.paper
            else:
                counts["duplicate_ids_merged"] += 1
                kept = _newer(kept, item.paper)
        if kept is None:
            counts["outside_dates"] += 1
            continue
        if outside is not None and outside < kept.published:
            counts["duplicate_ids_merged"] += 1
            kept = replace(kept, published=outside)
        window = windows.of(kept.published)
        if window is None:
            counts["outside_dates"] += 1
            continue
        yield kept, window
    counts["outside_dates"] += 0  # the card lists this count even when it is 0


class AbstractIndex:
    """Finds the papers whose abstract repeats an earlier one's (by date, then id).

    Holds 16 bytes of digest and 4 of date per paper, not the texts; papers are added in id
    order and named by their position in that order.
    """

    def __init__(self) -> None:
        self._digests = bytearray()
        self._days = array("i")

    def add(self, paper: Paper) -> None:
        """The next paper (in id order)."""
        self._digests += hashlib.blake2b(paper.text.encode("utf-8"), digest_size=16).digest()
        self._days.append(paper.published.toordinal())

    def repeated(self) -> np.ndarray[Any, np.dtype[np.bool_]]:
        """For each position, whether an earlier paper has the same abstract."""
        days = np.frombuffer(self._days, dtype=np.int32)
        digests = np.frombuffer(self._digests, dtype=">u8").reshape(-1, 2)
        positions = np.arange(len(days))
        order = np.lexsort((positions, days, digests[:, 1], digests[:, 0]))
        ordered = digests[order]
        same = np.all(ordered[1:] == ordered[:-1], axis=1)
        repeated = np.zeros(len(days), dtype=bool)
        repeated[order[1:][same]] = True
        return repeated


def _seeded_key(seed: int, paper_id: str) -> bytes:
    """The sort key of a paper in the seeded order (it depends on the id and seed alone)."""
    return hashlib.sha256(f"{seed}:{paper_id}".encode()).digest()


@dataclass
class Selection:
    """The dev and test papers, the overlap of each, and the candidates removed by the audit."""

    dev: list[Paper]
    test: list[Paper]
    overlap: dict[str, Overlap]
    removed: dict[str, Overlap]


def _by_id(paper: Paper) -> str:
    return paper.id


def select_eval(
    candidate_ids: Sequence[str],
    take: Callable[[list[int]], list[Paper]],
    train_texts: Callable[[], Iterable[str]],
    sizes: tuple[int, int],
    seed: int,
    ngram: int,
    threshold: float,
    keep_overlap: bool,
) -> Selection:
    """Take the first dev+test candidates in seeded order that pass the overlap audit.

    A candidate whose share of n-grams found in train exceeds ``threshold`` is removed (unless
    ``keep_overlap``) and the next candidate takes its place. The first ``test_size`` selected
    papers form test, the next ``dev_size`` dev. Only the candidates' ids are held:
    ``take(positions)`` gives the papers of a batch, and ``train_texts()`` streams the train
    split (once per batch of candidates; one batch is usually enough).
    """
    dev_size, test_size = sizes
    need = dev_size + test_size
    order = sorted(range(len(candidate_ids)),
                   key=lambda position: _seeded_key(seed, candidate_ids[position]))
    chosen: list[Paper] = []
    overlap: dict[str, Overlap] = {}
    removed: dict[str, Overlap] = {}
    position = 0
    while len(chosen) < need and position < len(order):
        batch = take(order[position : position + max(2 * (need - len(chosen)), 256)])
        position += len(batch)
        results = audit([p.text for p in batch], train_texts(), ngram)
        for paper, result in zip(batch, results, strict=True):
            if len(chosen) == need:
                break
            if result.shared and result.fraction > threshold and not keep_overlap:
                removed[paper.id] = result
                continue
            chosen.append(paper)
            overlap[paper.id] = result
    test = sorted(chosen[:test_size], key=_by_id)
    dev = sorted(chosen[test_size:], key=_by_id)
    return Selection(dev=dev, test=test, overlap=overlap, removed=removed)
