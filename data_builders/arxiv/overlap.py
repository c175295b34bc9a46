"""Contamination audit: word n-gram overlap of dev/test texts against the train split."""

from __future__ import annotations

import re
from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

_WORD = re.compile(r"\w+")
# Train n-gram hashes looked up together (8 bytes each).
_LOOKUP_BATCH = 1 << 20

Hashes = np.ndarray[Any, np.dtype[np.int64]]


def iter_ngram_hashes(text: str, n: int) -> Iterator[int]:
    """Hashes of the lower-cased word n-grams of ``text``, in order (none under n words)."""
    words = _WORD.findall(text.lower())
    for i in range(len(words) - n + 1):
        yield hash(tuple(words[i : i + n]))


def ngram_hashes(text: str, n: int) -> Hashes:
    """The distinct n-gram hashes of ``text``, sorted."""
    return np.unique(np.fromiter(iter_ngram_hashes(text, n), dtype=np.int64))


@dataclass(frozen=True)
class Overlap:
    """How many of a text's n-grams also occur in the train split."""

    shared: int
    total: int

    @property
    def fraction(self) -> float:
        """Shared / total n-grams (0 for texts shorter than n words)."""
        return self.shared / self.total if self.total else 0.0


def audit(candidates: Sequence[str], train_texts: Iterable[str], n: int) -> list[Overlap]:
    """Overlap of each candidate with the union of the train texts' n-grams.

    Only the candidates' n-grams are held, as sorted arrays; the train split is streamed
    once and its n-grams are looked up a million at a time, so the cost is one pass over
    train and the memory does not depend on its size.
    """
    grams = [ngram_hashes(text, n) for text in candidates]
    wanted = np.unique(np.concatenate(grams)) if grams else np.zeros(0, dtype=np.int64)
    found: set[int] = set()
    pending = array("q")
    for text in train_texts:
        pending.extend(iter_ngram_hashes(text, n))
        if len(pending) >= _LOOKUP_BATCH:
            found.update(_present(pending, wanted))
            pending = array("q")
    found.update(_present(pending, wanted))
    shared = np.fromiter(sorted(found), dtype=np.int64)
    return [Overlap(shared=int(np.isin(g, shared, assume_unique=True).sum()), total=len(g))
            for g in grams]


def _present(values: array[int], wanted: Hashes) -> list[int]:
    """The distinct ``values`` found in the sorted array ``wanted``."""
    if not len(values) or not len(wanted):
        return []
    candidates = np.unique(np.frombuffer(values, dtype=np.int64))
    slots = np.minimum(np.searchsorted(wanted, candidates), len(wanted) - 1)
    hits: list[int] = candidates[wanted[slots] == candidates].tolist()
    return hits
