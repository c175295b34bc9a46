"""Per-sample compression records, handed from the model to the task's scorer.

lm-eval scores each document in ``process_results(doc, results)``, which never sees the
model. The ``compressed`` model therefore files one :class:`SampleRecord` per answered
document here, keyed by the document's id and context, and the scorer turns it into
per-document efficiency metrics. Both run in the same process (also under accelerate,
where each rank scores its own shard).
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from typing import Any

EFFICIENCY_METRICS = (
    "compression_ratio",
    "original_tokens",
    "compressed_tokens",
    "compress_seconds",
    "answer_seconds",
    "ttft_seconds",
    "generated_tokens",
    "peak_rss_mb",
    "flops_ratio",
)
# The rate the compressor was asked for, beside the achieved compression_ratio; present
# when the compressor states one (``rate``, or ``target_tokens`` / original tokens).
REQUESTED_RATE = "requested_rate"
# Present only for answers from served models: the token usage the server reported.
SERVED_METRICS = ("served_prompt_tokens", "served_completion_tokens")
# Present when the size of the compressed form is known (see bench.compressors.bits): its
# bits, and those bits per original target token.
BITS_METRICS = ("compressed_bits", "bits_per_token")


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
        """The efficiency metrics, as floats (the cache flag is not a metric)."""
        values = asdict(self)
        metrics = {name: float(values[name]) for name in EFFICIENCY_METRICS}
        metrics.update({name: float(values[name]) for name in SERVED_METRICS
                        if values[name] is not None})
        if self.requested_rate is not None:
            metrics[REQUESTED_RATE] = float(self.requested_rate)
        if self.compressed_bits is not None:
            bits_name, per_token_name = BITS_METRICS
            metrics[bits_name] = float(self.compressed_bits)
            metrics[per_token_name] = float(self.bits_per_token or 0.0)
        return metrics


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
