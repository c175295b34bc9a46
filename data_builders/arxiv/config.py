"""What determines an arXiv corpus build and what it produced (shared by build and card)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from data_builders.arxiv.api import ApiSettings
from data_builders.arxiv.splits import Selection, Windows
from data_builders.arxiv.tokens import TargetTokenizer

Source = Literal["api", "snapshot", "jsonl"]


@dataclass(frozen=True)
class BuildConfig:
    """Everything that determines the corpus (the output folder aside)."""

    windows: Windows
    source: Source
    out: Path
    tokenizer: str
    input: Path | None = None
    api: ApiSettings | None = None
    categories: tuple[str, ...] = ()
    lengths: tuple[int, ...] = (96, 192, 288, 384, 480)
    dev_size: int = 3000
    test_size: int = 2500
    seed: int = 0
    ngram: int = 13
    overlap_threshold: float = 0.0
    keep_overlap: bool = False
    skip_bad: bool = False


@dataclass
class BuildResult:
    """What was built: per-file row counts and hashes, the counts and the audit;
    ``empty_answers``: the API queries answered with no results (not cached)."""

    rows: dict[str, int] = field(default_factory=dict)
    hashes: dict[str, str] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)
    inputs: list[dict[str, Any]] = field(default_factory=list)
    empty_answers: list[str] = field(default_factory=list)
    selection: Selection | None = None
    tokenizer: TargetTokenizer | None = None
