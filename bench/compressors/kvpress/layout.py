"""Which tokens of the task's prompt are kept whole, pressed, or fed to the decoder.

The prompt is tokenized as lm-eval's ``hf`` backend tokenizes it (the tokenizer's special
tokens, BOS for Llama, unless the text already starts with the BOS token), then cut at the
context's character offsets:

* head: the tokens before the context (the task instruction; BOS), prefilled and kept whole;
* pressed: the context's tokens (a token that straddles a border, e.g. ``▁Lily`` after
  ``Context: ``, belongs to the context), compressed by the press;
* tail: the tokens after the context (question and answer cue), read by the decoder from the
  compressed cache at positions that continue the uncompressed prompt.

Query-aware (kvpress's ``query_aware``: the question is compressed with the context): the
tail's tokens but its last join the pressed segment, and the decoder starts from the last one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from transformers import PreTrainedTokenizerBase


@dataclass(frozen=True)
class Segments:
    """Token ids of a prompt's three parts."""

    head: tuple[int, ...]
    pressed: tuple[int, ...]
    tail: tuple[int, ...]


def prompt_tokens(tokenizer: PreTrainedTokenizerBase, text: str
                  ) -> tuple[list[int], list[tuple[int, int]]]:
    """Ids and character spans of ``text`` as the ``hf`` backend encodes a prompt."""
    bos = tokenizer.bos_token
    special = not (isinstance(bos, str) and bos and text.startswith(bos))
    encoded = tokenizer(text, add_special_tokens=special, return_offsets_mapping=True)
    spans = [(int(start), int(end)) for start, end in encoded["offset_mapping"]]
    return list(encoded["input_ids"]), spans


def cut(ids: Sequence[int], spans: Sequence[tuple[int, int]], start: int, end: int
        ) -> Segments:
    """Split tokens at the characters ``start`` and ``end``: the leading tokens that end at or
    before ``start`` form the head, the tokens that begin at or after ``end`` the tail, the rest
    the pressed part."""
    head_end = 0
    while head_end < len(ids) and spans[head_end][1] <= start:
        head_end += 1
    tail_start = head_end
    while tail_start < len(ids) and spans[tail_start][0] < end:
        tail_start += 1
    return Segments(tuple(ids[:head_end]), tuple(ids[head_end:tail_start]),
                    tuple(ids[tail_start:]))


def prompt_segments(tokenizer: PreTrainedTokenizerBase, prefix: str, context: str,
                    suffix: str, query_aware: bool) -> Segments:
    """The prompt ``prefix + context + suffix`` in its three parts (see the module)."""
    ids, spans = prompt_tokens(tokenizer, prefix + context + suffix)
    segments = cut(ids, spans, len(prefix), len(prefix) + len(context))
    if not segments.pressed:
        raise ValueError("the prompt's context has no tokens to press")
    if not query_aware:
        return segments
    if not segments.tail:
        raise ValueError("query_aware needs prompt text after the context")
    return Segments(segments.head, segments.pressed + segments.tail[:-1], segments.tail[-1:])


def tail_after(tokenizer: PreTrainedTokenizerBase, before: str, suffix: str) -> tuple[int, ...]:
    """The tokens of ``suffix`` in the prompt ``before + suffix`` (tokenized as a whole)."""
    ids, spans = prompt_tokens(tokenizer, before + suffix)
    tail = cut(ids, spans, len(before), len(before)).tail
    if not tail:
        raise ValueError("the prompt has no text after the context to decode from")
    return tail
