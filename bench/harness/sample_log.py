"""Per-sample compression records, handed from the model to the task's scorer.

lm-eval scores each document in ``process_results(doc, results)``, which never sees the
model. The ``compressed`` model therefore files one
:class:`bench.results_record.SampleRecord` per answered
document here, keyed by the document's id and context, and the scorer turns it into
per-document efficiency metrics. Both run in the same process (also under accelerate,
where each rank scores its own shard).
"""

from __future__ import annotations

import hashlib
from typing import Any

from bench.results_record import SampleRecord

_RECORDS: dict[str, SampleRecord] = {}


def doc_key(doc: dict[str, Any]) -> str:
    """Identity of a document: its id and a hash of its context."""
    digest = hashlib.sha256(str(doc.get("context", "")).encode()).hexdigest()[:16]
    return f"{doc.get('qid', doc.get('id', ''))}::{digest}"


def file_record(doc: dict[str, Any], record: SampleRecord) -> None:
    """Store the record of ``doc`` (the latest one wins)."""
    _RECORDS[doc_key(doc)] = record


def take_record(doc: dict[str, Any]) -> SampleRecord | None:
    """The record filed for ``doc`` (removed: each answer is scored once, and a later run in
    the same process, say of ``--model hf``, must not report it), or None when no
    ``compressed`` model answered it."""
    return _RECORDS.pop(doc_key(doc), None)


def clear() -> None:
    """Forget all records (tests, or between runs in one process)."""
    _RECORDS.clear()
