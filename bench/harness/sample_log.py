"""Per-sample compression records, handed from the model to the task's scorer.

lm-eval scores each document in ``process_results(doc, results)``, which never sees the
model. The ``compressed`` model therefore files one :class:`SampleRecord` per answered
document here, keyed by the document's id and context, and the scorer turns it into
per-document efficiency metrics. Both run in the same process (also under accelerate,
where each rank scores its own shard).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, fields
from typing import Any

from bench import specs

# The kinds of metric a record measures (scores are the task's).
MEASURED_KINDS: tuple[specs.MetricKind, ...] = ("efficiency", "served", "size")


@dataclass(frozen=True)
class ServedUsage:
    """Tokens a server reported for one answer (its share when one call answered several)."""

    prompt_tokens: float
    completion_tokens: float


@dataclass(frozen=True)
class SampleRecord:
    """What answering one document cost, in the target model's tokens and wall time."""

    compression_ratio: float
    original_tokens: int
    compressed_tokens: int
    compress_seconds: float
    answer_seconds: float
    ttft_seconds: float
    generated_tokens: int
    peak_rss_mb: float
    flops_ratio: float
    compression_cached: bool = False
    served_prompt_tokens: float | None = None
    served_completion_tokens: float | None = None
    requested_rate: float | None = None
    compressed_bits: float | None = None

    @property
    def bits_per_token(self) -> float | None:
        """Compressed bits per original target token (None when the bits are unknown)."""
        if self.compressed_bits is None:
            return None
        return self.compressed_bits / self.original_tokens if self.original_tokens else 0.0

    def metrics(self) -> dict[str, float]:
        """The values declared as measured metrics (:mod:`bench.specs`) that this record
        knows, as floats, in the record's order (the cache flag is not a metric)."""
        declared = set(specs.metric_names(*MEASURED_KINDS))
        values = {**{f.name: getattr(self, f.name) for f in fields(self)},
                  "bits_per_token": self.bits_per_token}
        return {name: float(value) for name, value in values.items()
                if name in declared and value is not None}


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
