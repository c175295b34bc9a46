"""``llmzip``: lossless compression of the context with the target model (the floor).

The context is range-coded with the target model's next-token probabilities (LLMZip,
FineZip; see :mod:`bench.compressors._llmzip_codec` for the stream). Every sample is decoded
again with the same model, dtype and device, and the decoded text must equal the context
byte for byte, else the compression fails. The reader then answers from the decoded text,
so scores equal those of ``none``; what the row adds is ``compressed_bits``, the exact
size of the code, and its bits per original token: the information floor that the lossy
compressors are read against.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bench.compressors._api import (
    Capabilities,
    CompressionRequest,
    Family,
    Interval,
    TargetModel,
    option,
    parse_options,
    register_compressor,
)
from bench.records import CompressedContext, CompressedText, CompressionStats
from bench.substrate.errors import InputError

if TYPE_CHECKING:
    from bench.compressors._llmzip_codec import LlmzipCodec

NAME = "llmzip"


class LosslessCheckError(RuntimeError):
    """A decoded text differs from its input: the model's probabilities did not repeat."""


@dataclass(frozen=True)
class LlmzipOptions:
    """Options of ``llmzip``."""

    window: int | None = option(None, "positions the model sees at once",
                                shown_default="the model's max_position_embeddings",
                                accepts=Interval(4.0))


class Llmzip:
    """``llmzip``: the context coded losslessly; the reader gets the decoded text."""

    name = NAME
    version = "1"

    def __init__(self, target: TargetModel, options: LlmzipOptions) -> None:
        if target.model is None:
            raise InputError("llmzip needs a neural target model: it codes the context with "
                             "that model's next-token probabilities")
        from bench.compressors._llmzip_codec import LlmzipCodec, coder_name

        self.target = target
        self.codec: LlmzipCodec = LlmzipCodec(target.model, target.tokenizer, options.window)
        self._coder = coder_name()

    def settings(self) -> dict[str, Any]:
        return {"window": self.codec.window}

    def compress(self, requests: Sequence[CompressionRequest]) -> list[CompressedContext]:
        return [self._compress_one(request.context) for request in requests]

    def _compress_one(self, context: str) -> CompressedText:
        from bench.compressors._llmzip_edits import CorruptCodeError

        began = time.perf_counter()
        code = self.codec.encode(context)
        encoded = time.perf_counter()
        try:
            decoded = self.codec.decode(code)
        except CorruptCodeError as error:
            raise LosslessCheckError(
                f"llmzip: the code of the context {_sample_name(context)} does not decode "
                f"({error}); the model's probabilities were not reproducible on this "
                "device") from None
        decode_seconds = time.perf_counter() - encoded
        if decoded.encode("utf-8", "surrogatepass") != context.encode("utf-8", "surrogatepass"):
            raise LosslessCheckError(
                f"llmzip: the decoded text differs from the context {_sample_name(context)} "
                f"(first difference at character {_first_difference(decoded, context)}); the "
                "model's probabilities were not reproducible on this device")
        n_tokens = code.n_tokens
        stats = CompressionStats(n_tokens, n_tokens, encoded - began, requested_rate=None,
                                 compressed_bits=float(code.bits))
        extra = {"bits_per_token": code.bits / n_tokens if n_tokens else 0.0,
                 "coder": self._coder,
                 "decode_seconds": decode_seconds, "code_words": len(code.words),
                 "tokenizer_round_trip": code.edit_bytes == 0, "edit_bytes": code.edit_bytes}
        return CompressedText(decoded, stats, extra=extra)


def _sample_name(context: str) -> str:
    """A context named by its size and opening words (compressors do not see doc ids)."""
    opening = context[:40] + ("..." if len(context) > 40 else "")
    return f"{opening!r} ({len(context)} characters)"


def _first_difference(left: str, right: str) -> int:
    for index, (a, b) in enumerate(zip(left, right, strict=False)):
        if a != b:
            return index
    return min(len(left), len(right))


# The code depends on the model's weights, which the cache key does not cover; every run
# codes and checks its samples again.
@register_compressor(NAME, Capabilities(Family.LOSSLESS, cacheable=False))
def make_llmzip(target: TargetModel, options: Mapping[str, Any]) -> Llmzip:
    """Lossless range coding of the context with the target model (the information floor)."""
    return Llmzip(target, parse_options(LlmzipOptions, options, NAME))
