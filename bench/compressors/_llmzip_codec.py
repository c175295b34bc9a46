"""The llmzip code: a text range-coded with a causal LM's next-token probabilities.

One stream of 32-bit words from ``constriction``'s range coder (queue order), holding:

1. the number of tokens ``n``: its bit length (0..32, uniform over 33 values), then the bits
   below its leading one, each uniform over {0, 1};
2. the ``n`` token ids, each with the model's distribution given the tokens before it
   (see :mod:`bench.compressors._llmzip_model`), quantised by constriction's categorical
   model (24-bit fixed point, ``perfect=False``, every token at least one unit);
3. one bit, uniform: whether the tokenizer's decoded string differs from the text;
4. if so, the edits of :mod:`bench.compressors._llmzip_edits`: their byte count as in 1,
   then every byte uniform over 256 values.

The size of the code is exactly 32 bits x its words. Against the ideal ``sum(-log2 p)``
of the tokens plus the header bits, the range coder adds at most :data:`FLUSH_BITS`
(closing the stream and padding it to whole words) and, per coded symbol, at most
:data:`SYMBOL_OVERHEAD_BITS` for tokens of probability >= 2^-16 (24-bit quantisation and
range truncation; a token rarer than 2^-24 costs at most 24 bits plus that).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib.metadata import version
from typing import Any

import numpy as np
import numpy.typing as npt

from bench.compressors._llmzip_edits import CorruptCodeError, apply_text_edits, text_edits
from bench.compressors._llmzip_model import (
    Probabilities,
    SequentialPredictor,
    model_window,
    parallel_probabilities,
    start_token,
)
from bench.substrate.errors import InputError

FLUSH_BITS = 64
SYMBOL_OVERHEAD_BITS = 0.02
_COUNT_BIT_LENGTHS = 33
INSTALL_HINT = "pip install constriction"


def _constriction() -> Any:
    try:
        import constriction
    except ImportError as error:
        raise ImportError(f"llmzip needs the constriction entropy coder: {INSTALL_HINT}") \
            from error
    return constriction


def coder_name() -> str:
    """The coder that fixes the format of the stream (recorded in settings)."""
    return f"constriction {version('constriction')} range coder, 24-bit categorical"


@dataclass(frozen=True)
class LlmzipCode:
    """A coded text: the coder's words, and what they hold."""

    words: npt.NDArray[np.uint32]
    n_tokens: int
    edit_bytes: int

    @property
    def bits(self) -> int:
        """Exact size of the code in bits."""
        return 32 * len(self.words)


def count_bits(value: int) -> float:
    """Bits the stream spends on a count ``value`` (header of tokens or edit bytes)."""
    return math.log2(_COUNT_BIT_LENGTHS) + max(0, value.bit_length() - 1)


def _encode_count(encoder: Any, value: int) -> None:
    model = _constriction().stream.model
    if not 0 <= value < 2 ** (_COUNT_BIT_LENGTHS - 1):
        raise ValueError(f"llmzip: cannot code a count of {value} (at most 2^32 - 1)")
    length = value.bit_length()
    encoder.encode(length, model.Uniform(_COUNT_BIT_LENGTHS))
    if length > 1:
        bits = [(value >> shift) & 1 for shift in range(length - 2, -1, -1)]
        encoder.encode(np.array(bits, dtype=np.int32), model.Uniform(2))


def _decode_count(decoder: Any) -> int:
    model = _constriction().stream.model
    length = int(decoder.decode(model.Uniform(_COUNT_BIT_LENGTHS)))
    if length <= 1:
        return length
    value = 1
    for bit in decoder.decode(model.Uniform(2), length - 1):
        value = (value << 1) | int(bit)
    return value


def _expect_count(decoded: int, recorded: int, what: str) -> int:
    if decoded != recorded:
        raise CorruptCodeError(f"the code holds {decoded} {what} where {recorded} were coded")
    return decoded


class LlmzipCodec:
    """Encodes and decodes texts with one causal LM and its tokenizer."""

    def __init__(self, model: Any, tokenizer: Any, window: int | None = None) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.start = start_token(tokenizer)
        self.window = model_window(model, window)
        self._family = _constriction().stream.model.Categorical(perfect=False)

    def token_ids(self, text: str) -> list[int]:
        ids: list[int] = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return ids

    def detokenize(self, ids: list[int]) -> str:
        return str(self.tokenizer.decode(ids, skip_special_tokens=False,
                                         clean_up_tokenization_spaces=False))

    def encode(self, text: str) -> LlmzipCode:
        """The decodable code of ``text`` (probabilities computed as the decoder will)."""
        ids = self.token_ids(text)
        return self._encode(text, ids, self._sequential_rows(ids))

    def code_bits(self, text: str) -> int:
        """Size in bits of the code of ``text``, with probabilities from one forward pass
        per window segment: the size :meth:`encode` gives up to float rounding, faster."""
        ids = self.token_ids(text)
        return self._encode(text, ids, parallel_probabilities(self.model, self.start,
                                                              self.window, ids)).bits

    def decode(self, code: LlmzipCode) -> str:
        """The text of ``code``; :class:`CorruptCodeError` when its words were changed."""
        constriction = _constriction()
        decoder = constriction.stream.queue.RangeDecoder(code.words)
        n_tokens = _expect_count(_decode_count(decoder), code.n_tokens, "tokens")
        predictor = SequentialPredictor(self.model, self.start, self.window)
        ids: list[int] = []
        for index in range(n_tokens):
            row = predictor.first() if index == 0 else predictor.after(ids[-1])
            ids.append(int(decoder.decode(self._family, row[np.newaxis])[0]))
        decoded = self.detokenize(ids)
        has_edits = bool(decoder.decode(constriction.stream.model.Uniform(2)))
        n_bytes = _expect_count(_decode_count(decoder) if has_edits else 0, code.edit_bytes,
                                "edit bytes")
        payload = decoder.decode(constriction.stream.model.Uniform(256), n_bytes)
        if not decoder.maybe_exhausted():
            raise CorruptCodeError("the code has words left over after its last symbol")
        return apply_text_edits(decoded, bytes(np.asarray(payload, dtype=np.uint8)))

    def _sequential_rows(self, ids: list[int]) -> Iterator[Probabilities]:
        predictor = SequentialPredictor(self.model, self.start, self.window)
        for index in range(len(ids)):
            row = predictor.first() if index == 0 else predictor.after(ids[index - 1])
            yield row[np.newaxis]

    def _encode(self, text: str, ids: list[int], blocks: Iterable[Probabilities]
                ) -> LlmzipCode:
        constriction = _constriction()
        encoder = constriction.stream.queue.RangeEncoder()
        _encode_count(encoder, len(ids))
        done = 0
        for block in blocks:
            symbols = np.asarray(ids[done:done + block.shape[0]], dtype=np.int32)
            self._check_alphabet(symbols, block.shape[1])
            encoder.encode(symbols, self._family, block)
            done += block.shape[0]
        edits = text_edits(self.detokenize(ids), text)
        encoder.encode(int(bool(edits)), constriction.stream.model.Uniform(2))
        if edits:
            _encode_count(encoder, len(edits))
            encoder.encode(np.frombuffer(edits, dtype=np.uint8).astype(np.int32),
                           constriction.stream.model.Uniform(256))
        return LlmzipCode(encoder.get_compressed(), len(ids), len(edits))

    @staticmethod
    def _check_alphabet(symbols: npt.NDArray[np.int32], alphabet: int) -> None:
        if symbols.size and int(symbols.max()) >= alphabet:
            raise InputError(f"llmzip: token id {int(symbols.max())} is outside the model's "
                             f"{alphabet} logits; the tokenizer does not match the model")
