"""Recognising QA files that are not MRQA JSONL, to say what they are and where MRQA ones are.

Only consulted once the first line failed as an MRQA header, so a real MRQA file is never
judged by its contents. The first bytes of the file are enough to tell the common originals
apart: HotpotQA (a JSON array of ``_id``/``supporting_facts`` records), RACE (one
``article``/``questions``/``options`` object per passage), SQuAD (``data``/``paragraphs``),
or any other JSON array.
"""

from __future__ import annotations

import gzip
import re
import zlib
from pathlib import Path

__all__ = ["MRQA_SOURCES", "foreign_format"]

MRQA_SOURCES = (
    "the MRQA 2019 shared task files (github.com/mrqa/MRQA-Shared-Task-2019: in-domain dev "
    "SQuAD.jsonl.gz and HotpotQA.jsonl.gz, out-of-domain dev RelationExtraction.jsonl.gz and "
    "RACE.jsonl.gz) or `--source hf` (the Hugging Face `mrqa` dataset)"
)
"""Where MRQA-format versions of the benchmarks come from (quoted in error messages)."""

_SNIFF_BYTES = 1 << 16


def _key(name: str) -> re.Pattern[str]:
    return re.compile(rf'"{name}"\s*:')


_SIGNATURES: tuple[tuple[str, tuple[re.Pattern[str], ...]], ...] = (
    ("HotpotQA's original format", (_key("supporting_facts"), _key("_id"))),
    ("RACE's original format", (_key("article"), _key("options"))),
    ("SQuAD's original format", (_key("data"), _key("paragraphs"))),
)


def _prefix(path: Path) -> str:
    try:
        with path.open("rb") as probe:
            magic = probe.read(2)
        opener = gzip.open if magic == b"\x1f\x8b" else open
        with opener(path, "rb") as handle:
            data = handle.read(_SNIFF_BYTES)
    except (OSError, EOFError, zlib.error):
        return ""
    return data.decode("utf-8", errors="replace")


def foreign_format(path: Path) -> str | None:
    """What ``path`` is when it is a known non-MRQA QA file (e.g. "a JSON array"), else None."""
    prefix = _prefix(path)
    for name, keys in _SIGNATURES:
        if all(key.search(prefix) for key in keys):
            return name
    if prefix.lstrip().startswith("["):
        return "a JSON array"
    return None
