"""The bundled demo dataset: small original texts, written for compressbench (no third-party text).

* ``demo_qa.jsonl`` - MRQA format: a header line, then 15 contexts (60-120 words) about invented
  places, people and inventions, three per QA benchmark (each line has ``"benchmark"``:
  squad, hotpotqa, relation_extraction, race or arxivqa; the hotpotqa ones use MRQA markup).
  Each context has 3 extractive questions whose answers occur verbatim near its beginning,
  middle and end, so a short token limit visibly drops the last ones.
* ``demo_regeneration.jsonl`` - 12 original paragraphs (64-72 words), ``{"id", "text"}`` lines.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

__all__ = ["demo_qa_path", "demo_regeneration_path", "demo_regeneration_records"]


def _path(name: str) -> Path:
    return Path(str(resources.files(__name__).joinpath(name)))


def demo_qa_path() -> Path:
    """Path of the bundled MRQA-format demo QA file."""
    return _path("demo_qa.jsonl")


def demo_regeneration_path() -> Path:
    """Path of the bundled demo regeneration paragraphs (JSON lines)."""
    return _path("demo_regeneration.jsonl")


def demo_regeneration_records() -> list[dict[str, str]]:
    """The demo paragraphs as ``{"id", "text"}`` records, in file order."""
    with demo_regeneration_path().open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]
