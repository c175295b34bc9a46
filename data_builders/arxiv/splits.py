"""Date windows, de-duplication and the seeded dev/test selection with the overlap audit."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date

from data_builders.arxiv.overlap import Overlap, audit
from data_builders.arxiv.records import Paper


@dataclass(frozen=True)
class Windows:
    """``train`` = [train_after, train_before); ``eval`` (dev+test) = [after, before)."""

    train_before: date
    after: date
    train_after: date | None = None
    before: date | None = None

    def __post_init__(self) -> None:
        if self.after < self.train_before:
            raise ValueError(
                f"--after {self.after} is before --train-before {self.train_before}: "
                "dev/test would overlap the train period"
            )
        if self.before is not None and self.before <= self.after:
            raise ValueError(f"--before {self.before} must be after --after {self.after}")
        if self.train_after is not None and self.train_after >= self.train_before:
            raise ValueError("--train-after must be before --train-before")

    def of(self, published: date) -> str | None:
        """``"train"``, ``"eval"`` or None (outside both windows)."""
        if published < self.train_before:
            return None if self.train_after and published < self.train_after else "train"
        if published >= self.after and (self.before is None or published < self.before):
            return "eval"
        return None


@dataclass
class Collected:
    """Papers per window after cleaning, plus the counts the card reports."""

    train: list[Paper]
    eval: list[Paper]
    counts: Counter[str] = field(default_factory=Counter)


def _newer(current: Paper, candidate: Paper) -> Paper:
    """Merge two records of one id: the earliest date, the text of the latest version."""
    keep = candidate if candidate.version > current.version else current
    return replace(keep, published=min(current.published, candidate.published))


def collect(
    papers: Iterable[Paper], windows: Windows, categories: Sequence[str], counts: Counter[str]
) -> Collected:
    """Filter, merge per id (first-version date wins) and drop exact duplicate abstracts."""
    wanted = set(categories)
    kept: dict[str, Paper] = {}
    outside: dict[str, date] = {}
    for paper in papers:
        if wanted and wanted.isdisjoint(paper.categories):
            counts["outside_categories"] += 1
            continue
        if windows.of(paper.published) is None:
            previous = outside.get(paper.id)
            outside[paper.id] = min(previous, paper.published) if previous else paper.published
            continue
        if paper.id in kept:
            counts["duplicate_ids_merged"] += 1
            kept[paper.id] = _newer(kept[paper.id], paper)
        else:
            kept[paper.id] = paper
    merged: list[Paper] = []
    for paper in kept.values():
        earlier = outside.get(paper.id)
        if earlier is not None and earlier < paper.published:
            counts["duplicate_ids_merged"] += 1
            paper = replace(paper, published=earlier)
        if windows.of(paper.published) is None:
            counts["outside_dates"] += 1
            continue
        merged.append(paper)
    counts["outside_dates"] += len(outside.keys() - kept.keys())
    unique = _drop_duplicate_abstracts(merged, counts)
    return Collected(
        train=sorted((p for p in unique if windows.of(p.published) == "train"), key=_by_id),
        eval=sorted((p for p in unique if windows.of(p.published) == "eval"), key=_by_id),
        counts=counts,
    )


def _by_id(paper: Paper) -> str:
    return paper.id


def _drop_duplicate_abstracts(papers: list[Paper], counts: Counter[str]) -> list[Paper]:
    first: dict[str, Paper] = {}
    for paper in sorted(papers, key=lambda p: (p.published, p.id)):
        if paper.text in first:
            counts["duplicate_abstracts_removed"] += 1
        else:
            first[paper.text] = paper
    return list(first.values())


def seeded_order(papers: Sequence[Paper], seed: int) -> list[Paper]:
    """A permutation that depends only on the ids and the seed (not on input order)."""
    return sorted(papers, key=lambda p: hashlib.sha256(f"{seed}:{p.id}".encode()).digest())


@dataclass
class Selection:
    """The dev and test papers, the overlap of each, and the candidates removed by the audit."""

    dev: list[Paper]
    test: list[Paper]
    overlap: dict[str, Overlap]
    removed: dict[str, Overlap]


def select_eval(
    candidates: Sequence[Paper],
    train: Sequence[Paper],
    sizes: tuple[int, int],
    seed: int,
    ngram: int,
    threshold: float,
    keep_overlap: bool,
) -> Selection:
    """Take the first dev+test candidates in seeded order that pass the overlap audit.

    A candidate whose share of n-grams found in train exceeds ``threshold`` is removed (unless
    ``keep_overlap``) and the next candidate takes its place. The first ``test_size`` selected
    papers form test, the next ``dev_size`` dev.
    """
    dev_size, test_size = sizes
    need = dev_size + test_size
    order = seeded_order(candidates, seed)
    chosen: list[Paper] = []
    overlap: dict[str, Overlap] = {}
    removed: dict[str, Overlap] = {}
    position = 0
    while len(chosen) < need and position < len(order):
        batch = order[position : position + max(2 * (need - len(chosen)), 256)]
        position += len(batch)
        results = audit([p.text for p in batch], (p.text for p in train), ngram)
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
