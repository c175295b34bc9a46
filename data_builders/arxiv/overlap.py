"""Contamination audit: word n-gram overlap of dev/test texts against the train split."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

_WORD = re.compile(r"\w+")


def ngram_hashes(text: str, n: int) -> set[int]:
    """Hashes of the lower-cased word n-grams of ``text`` (empty if it has fewer than n words)."""
    words = _WORD.findall(text.lower())
    return {hash(tuple(words[i : i + n])) for i in range(len(words) - n + 1)}


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

    Only the candidates' n-grams are held in memory; the train split is streamed once, so
    the cost is one pass over train whatever its size.
    """
    grams = [ngram_hashes(text, n) for text in candidates]
    wanted: set[int] = set().union(*grams) if grams else set()
    found: set[int] = set()
    for text in train_texts:
        words = _WORD.findall(text.lower())
        for i in range(len(words) - n + 1):
            value = hash(tuple(words[i : i + n]))
            if value in wanted:
                found.add(value)
    return [Overlap(shared=len(g & found), total=len(g)) for g in grams]
