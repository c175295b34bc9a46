"""``compressed_bits``: the size of every compressed form in bits, on one axis.

* A compressor that knows its exact size sets ``stats.compressed_bits`` (``llmzip``: the
  length of its code); that value is used as is.
* Text (hard methods): the llmzip code length of the kept text with the TARGET model
  (:meth:`~bench.compressors._llmzip_codec.LlmzipCodec.code_bits`), i.e. what storing the
  kept text losslessly would cost. The reader reads the kept text as text, so no method here
  needs to say which tokens were kept; a compression whose decoder does need it records
  ``extra[KEPT_FROM_TOKENS] = n`` (the original token count) and pays ``log2 C(n, k)`` bits
  more, ``k`` being its compressed tokens. Without a neural target model (lexical reader,
  served models) the size of text is unknown: None.
* Embeddings: every value of the ``[slots, hidden]`` tensor at its dtype's width, i.e.
  ``k x hidden x bits``.
* Key/value states: every value of every layer's keys and values at their dtype's width,
  i.e. ``k x layers x 2 x kv_heads x head_dim x bits`` (``k x hidden x layers x 2 x bits``
  when the model has as many key/value heads as heads).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from typing import TYPE_CHECKING

from bench.compressors._api import TargetModel
from bench.records import CompressedContext, CompressedEmbeddings, CompressedKV, CompressedText

if TYPE_CHECKING:
    import torch

    from bench.compressors._llmzip_codec import LlmzipCodec

KEPT_FROM_TOKENS = "kept_from_tokens"
logger = logging.getLogger(__name__)


def subset_bits(n: int, k: int) -> float:
    """Bits to name which ``k`` of ``n`` positions were kept: ``log2 C(n, k)``."""
    if not 0 <= k <= n:
        raise ValueError(f"a subset of {k} of {n} tokens is not possible")
    return math.log2(math.comb(n, k))


def tensor_bits(tensors: Iterable[torch.Tensor]) -> int:
    """Bits of every value of ``tensors`` at its dtype's width."""
    return sum(int(t.numel()) * t.element_size() * 8 for t in tensors)


def soft_bits(compressed: CompressedEmbeddings | CompressedKV) -> int:
    """Size of a soft compression: all its values at the dtype they are stored in."""
    if isinstance(compressed, CompressedEmbeddings):
        return tensor_bits([compressed.embeddings])
    return tensor_bits([*compressed.keys, *compressed.values])


class BitCounter:
    """``compressed_bits`` of compressions answered by one target model (text sizes are
    memoised: a context's compression is usually read by several questions; with
    ``code_text`` False they are not computed and text compressions get None)."""

    def __init__(self, target: TargetModel, code_text: bool = True) -> None:
        self.target = target
        self.code_text = code_text
        self._codec: LlmzipCodec | None = None
        self._codec_error: str | None = None
        self._text_bits: dict[str, int] = {}

    def __call__(self, compressed: CompressedContext) -> float | None:
        if compressed.stats.compressed_bits is not None:
            return compressed.stats.compressed_bits
        if not isinstance(compressed, CompressedText):
            return float(soft_bits(compressed))
        bits = self.text_bits(compressed.text)
        if bits is None:
            return None
        kept_from = compressed.extra.get(KEPT_FROM_TOKENS)
        if kept_from is not None:
            return bits + subset_bits(int(kept_from), compressed.stats.compressed_tokens)
        return float(bits)

    def text_bits(self, text: str) -> int | None:
        """llmzip code length of ``text`` with the target model (None without one, or when
        the model cannot code text: no BOS/EOS token, no known window; logged once)."""
        codec = self._text_codec() if self.code_text else None
        if codec is None:
            return None
        if text not in self._text_bits:
            self._text_bits[text] = codec.code_bits(text)
        return self._text_bits[text]

    def _text_codec(self) -> LlmzipCodec | None:
        if self.target.model is None or self._codec_error is not None:
            return None
        if self._codec is None:
            from bench.compressors._llmzip_codec import LlmzipCodec

            try:
                self._codec = LlmzipCodec(self.target.model, self.target.tokenizer)
            except (ValueError, ImportError) as error:
                self._codec_error = str(error)
                logger.warning("compressed_bits of text compressions left out: %s", error)
                return None
        return self._codec
