"""Token layout of ICAE v2 (multi-span, Ge et al. 2024): ids, segments, prompts, loss targets.

Pure Python, no model. The ids follow the published code: the base vocabulary ``V`` (the
config's), one id for the ``[PAD]`` it added, then ``k`` memory ids, then the AE, LM and FT
ids. Ids ``>= V + 1`` are never looked up in the base embedding: they index the released
``memory_token_embed`` (``id - (V + 1)``), and a memory id in a decoder input is a placeholder
that the slots fill in order.

A context of ``L`` encoder ids becomes ``n = ceil(L / (k * rate))`` segments of
``ceil(L / n)`` ids (the last one shorter); each segment gives ``k`` slots.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bench.substrate.errors import InputError

IGNORE_INDEX = -100
INST_OPEN = "[INST]"
INST_CLOSE = "[/INST]"


@dataclass(frozen=True)
class IcaeV2Ids:
    """The extended id space of one base vocabulary and memory size ``num_mem``."""

    vocab_size: int
    num_mem: int

    @property
    def first_memory(self) -> int:
        return self.vocab_size + 1

    @property
    def memory(self) -> range:
        return range(self.first_memory, self.first_memory + self.num_mem)

    @property
    def ae(self) -> int:
        return self.first_memory + self.num_mem

    @property
    def lm(self) -> int:
        return self.ae + 1

    @property
    def ft(self) -> int:
        return self.ae + 2

    @property
    def embedding_rows(self) -> int:
        """Rows of ``memory_token_embed``: k memory tokens, AE, LM, FT."""
        return self.num_mem + 3

    def is_extended(self, token: int) -> bool:
        """Whether ``token`` is embedded from ``memory_token_embed``."""
        return token >= self.first_memory

    def is_memory(self, token: int) -> bool:
        return token in self.memory

    def embedding_row(self, token: int) -> int:
        """Row of ``memory_token_embed`` that embeds ``token`` (an extended id)."""
        return token - self.first_memory


def segment_bounds(length: int, num_mem: int, mean_compression_rate: int
                   ) -> list[tuple[int, int]]:
    """``[start, end)`` of every segment of ``length`` encoder ids."""
    if length < 1:
        raise InputError("ICAE v2 needs at least one encoder token (got an empty context)")
    count = math.ceil(length / (num_mem * mean_compression_rate))
    size = math.ceil(length / count)
    return [(start, min(start + size, length)) for start in range(0, size * count, size)]


def num_slots(length: int, num_mem: int, mean_compression_rate: int) -> int:
    """Memory slots of a context of ``length`` encoder ids (segments x k)."""
    return len(segment_bounds(length, num_mem, mean_compression_rate)) * num_mem


def segment_memory_positions(segment_length: int, num_mem: int) -> list[int]:
    """Positions of the k memory tokens in an encoded segment: right after its ids."""
    return list(range(segment_length, segment_length + num_mem))


@dataclass(frozen=True)
class PromptTokens:
    """Tokenizer ids the prompts use: BOS, EOS and the ``[INST]`` / ``[/INST]`` markers."""

    bos: int | None
    eos: int
    inst_open: tuple[int, ...]
    inst_close: tuple[int, ...]

    @classmethod
    def from_tokenizer(cls, tokenizer: Any) -> PromptTokens:
        eos = tokenizer.eos_token_id
        if eos is None:
            raise InputError(f"ICAE v2: tokenizer {getattr(tokenizer, 'name_or_path', '')!r} "
                             "has no eos_token_id; the decoder needs one to stop")
        return cls(bos=tokenizer.bos_token_id, eos=int(eos),
                   inst_open=tuple(tokenizer.encode(INST_OPEN, add_special_tokens=False)),
                   inst_close=tuple(tokenizer.encode(INST_CLOSE, add_special_tokens=False)))

    def with_bos(self, ids: Sequence[int]) -> list[int]:
        return ([] if self.bos is None else [self.bos]) + list(ids)


def text_ids(tokenizer: Any, text: str) -> list[int]:
    """Token ids of ``text`` without special tokens."""
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def encoder_ids(tokenizer: Any, tokens: PromptTokens, context: str, max_tokens: int,
                with_bos: bool = True) -> list[int]:
    """Ids the encoder reads: ``[BOS] + context ids``, cut to ``max_tokens`` ids in all."""
    ids = text_ids(tokenizer, context)
    return (tokens.with_bos(ids) if with_bos else ids)[:max_tokens]


@dataclass(frozen=True)
class DecoderLayout:
    """Decoder input ids around the slots: ``prefix``, ``slots`` placeholders, ``suffix``."""

    prefix: tuple[int, ...]
    slots: int
    suffix: tuple[int, ...]
    placeholder: int

    @property
    def ids(self) -> list[int]:
        """The whole input, each slot standing as the first memory id."""
        return [*self.prefix, *[self.placeholder] * self.slots, *self.suffix]

    @property
    def memory_positions(self) -> list[int]:
        return [i for i, token in enumerate(self.ids) if token == self.placeholder]

    @property
    def start_position(self) -> int:
        """Position of the AE / FT token that follows the slots."""
        return self.memory_positions[-1] + 1


def regeneration_layout(ids: IcaeV2Ids, slots: int) -> DecoderLayout:
    """Pretrained (autoencoding) prompt: the slots, then the AE embedding."""
    return DecoderLayout((), slots, (ids.ae,), ids.memory[0])


def qa_layout(ids: IcaeV2Ids, tokens: PromptTokens, slots: int,
              question_ids: Sequence[int]) -> DecoderLayout:
    """Fine-tuned prompt: ``[BOS] [INST]`` slots ``FT question [/INST]``."""
    prefix = tuple(tokens.with_bos(tokens.inst_open))
    suffix = (ids.ft, *question_ids, *tokens.inst_close)
    return DecoderLayout(prefix, slots, suffix, ids.memory[0])


@dataclass(frozen=True)
class LossExample:
    """One training example: encoder ids, decoder ids (with placeholders) and labels.

    The loss is the cross-entropy of ``logits[:, :-1]`` against ``labels[:, 1:]``.
    """

    encoder_ids: tuple[int, ...]
    prompt_answer_ids: tuple[int, ...]
    labels: tuple[int, ...]


def _example(encoder: Sequence[int], prompt: DecoderLayout, answer: Sequence[int]) -> LossExample:
    prompt_ids = prompt.ids
    labels = [IGNORE_INDEX] * len(prompt_ids) + list(answer)
    return LossExample(tuple(encoder), tuple(prompt_ids + list(answer)), tuple(labels))


def pretraining_example(ids: IcaeV2Ids, tokens: PromptTokens, encoder: Sequence[int],
                        mean_compression_rate: int) -> LossExample:
    """Autoencoding example: regenerate the encoder ids (BOS included) and EOS after AE."""
    slots = num_slots(len(encoder), ids.num_mem, mean_compression_rate)
    return _example(encoder, regeneration_layout(ids, slots), [*encoder, tokens.eos])


def pretraining_window(text_ids_with_bos: Sequence[int], max_tokens: int,
                       rng: random.Random) -> list[int]:
    """The whole text if it fits, else a random window of ``max_tokens`` ids."""
    if len(text_ids_with_bos) <= max_tokens:
        return list(text_ids_with_bos)
    start = rng.randint(0, len(text_ids_with_bos) - max_tokens)
    return list(text_ids_with_bos[start:start + max_tokens])


def finetuning_example(ids: IcaeV2Ids, tokens: PromptTokens, context: Sequence[int],
                       question: Sequence[int], answer: Sequence[int],
                       mean_compression_rate: int) -> LossExample:
    """Instruction fine-tuning example: answer ids and EOS after the fine-tuned prompt.

    ``context`` are the encoder ids; the published training code reads them WITHOUT BOS.
    """
    slots = num_slots(len(context), ids.num_mem, mean_compression_rate)
    layout = qa_layout(ids, tokens, slots, question)
    return _example(context, layout, [*answer, tokens.eos])


def finetuning_example_from_text(tokenizer: Any, ids: IcaeV2Ids, context: str, question: str,
                                 answer: str, mean_compression_rate: int,
                                 max_tokens: int) -> LossExample:
    """:func:`finetuning_example` tokenised as the published training code does."""
    tokens = PromptTokens.from_tokenizer(tokenizer)
    encoder = encoder_ids(tokenizer, tokens, context, max_tokens, with_bos=False)
    return finetuning_example(ids, tokens, encoder, text_ids(tokenizer, question),
                              text_ids(tokenizer, answer), mean_compression_rate)


def pretraining_example_from_text(tokenizer: Any, ids: IcaeV2Ids, text: str,
                                  mean_compression_rate: int, max_tokens: int,
                                  rng: random.Random) -> LossExample:
    """:func:`pretraining_example` tokenised as the published training code does."""
    tokens = PromptTokens.from_tokenizer(tokenizer)
    window = pretraining_window(tokens.with_bos(text_ids(tokenizer, text)), max_tokens, rng)
    return pretraining_example(ids, tokens, window, mean_compression_rate)
