"""Typed records that flow through the pipeline.

A :class:`ContextSample` is one context with its questions, as read from a benchmark.
A compressor turns the context into one :data:`CompressedContext`:

* :class:`CompressedText` - hard compression: a shorter string for the target model;
* :class:`CompressedEmbeddings` - soft, ICAE-style: vectors fed as input embeddings;
* :class:`CompressedKV` - soft, 500x-style: per-layer key/value states fed as a cache.

Every compressed form records the original token count, the compressed size (tokens or
slots, in the TARGET model's units) and the wall time the compression took.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Question:
    """One question on a context, with every accepted gold answer."""

    qid: str
    question: str
    answers: tuple[str, ...]


@dataclass(frozen=True)
class ContextSample:
    """One context and the questions asked on it (MRQA-style)."""

    context_id: str
    context: str
    questions: tuple[Question, ...]
    source: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CompressionStats:
    """Sizes and cost of one compression, in the target model's tokens.

    ``compressed_bits`` is the size of the compressed form in bits, when the compressor
    knows it exactly (``llmzip``); otherwise the harness derives it
    (:func:`bench.compressors.bits.compressed_bits`). ``encoded_tokens`` is the number of
    the context's tokens the compressor actually read (a soft compressor reads at most what
    its checkpoint was trained to encode, and cuts the rest); None where it does not say.
    """

    original_tokens: int
    compressed_tokens: int
    seconds: float
    requested_rate: float | None = None
    compressed_bits: float | None = None
    encoded_tokens: int | None = None

    @property
    def cut_by_compressor(self) -> bool:
        """Whether the compressor read fewer of the context's tokens than it has."""
        return self.encoded_tokens is not None and self.encoded_tokens < self.original_tokens

    @property
    def achieved_rate(self) -> float:
        """compressed / original target tokens (1.0 for an empty context)."""
        if self.original_tokens == 0:
            return 1.0
        return self.compressed_tokens / self.original_tokens


@dataclass(frozen=True)
class CompressedText:
    """Hard compression: the context replaced by ``text``.

    ``keep_instruction`` is False only for prompt baselines that also drop the task
    instruction (the paper's "zero-shot" row).
    """

    text: str
    stats: CompressionStats
    keep_instruction: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CompressedEmbeddings:
    """Soft compression given to the decoder as input embeddings ``[slots, hidden]``."""

    embeddings: torch.Tensor
    stats: CompressionStats
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CompressedKV:
    """Soft compression given to the decoder as a cache.

    ``keys[i]`` and ``values[i]`` are layer ``i``'s states ``[kv_heads, slots, head_dim]``,
    with rotary positions already applied at positions ``0..slots-1`` unless
    ``position_offset`` says otherwise (the decoder's own tokens start there).
    """

    keys: tuple[torch.Tensor, ...]
    values: tuple[torch.Tensor, ...]
    stats: CompressionStats
    position_offset: int
    extra: dict[str, Any] = field(default_factory=dict)


CompressedContext = CompressedText | CompressedEmbeddings | CompressedKV
