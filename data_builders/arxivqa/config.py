"""What determines an ArxivQA build and what it produced (shared by build and card)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from data_builders.arxivqa.client import ClientSettings, Usage
from data_builders.arxivqa.validate import QAPair


@dataclass(frozen=True)
class Context:
    """One corpus row to generate questions for."""

    id: str
    text: str
    n_tokens: int
    number: int


@dataclass(frozen=True)
class QAConfig:
    """What determines the generated dataset (plus where it goes)."""

    corpus: Path
    split: str
    out: Path
    template: str
    client: ClientSettings
    qa_per_96_tokens: float = 5.0
    max_contexts: int | None = None
    price_input: float | None = None
    price_output: float | None = None


@dataclass
class QAResult:
    """The assembled dataset and its counts."""

    contexts: list[tuple[Context, list[QAPair]]] = field(default_factory=list)
    rejected: Counter[str] = field(default_factory=Counter)
    usage: Usage = field(default_factory=Usage)
    total_tokens: Counter[str] = field(default_factory=Counter)
    files: dict[str, str] = field(default_factory=dict)
