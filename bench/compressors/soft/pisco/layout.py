"""Token layout of PISCO (naver/pisco): compressor rows, decoder prompts and loss labels.

Pure Python (lists of ids) apart from the padding into tensors. A document (or chunk) of
``n`` compressor ids, BOS included, gets ``n // rate + 1`` ``<MEM>`` tokens appended; the
compressor rows of one batch are padded on the LEFT. The decoder reads ``<MEM>``
placeholders, which the connector's vectors replace in order:

* QA: the decoder tokenizer's chat template over a system prompt, the user turn
  ``"\\n\\nBackground:" + "Document j:" + <MEM> x n_j ... + "\\n Question: " + question`` and
  an assistant turn holding the answer (empty when generating);
* regeneration (auto-encoding): ``<AE>`` + ``<MEM>`` x n + BOS, then the text and EOS.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

import torch

IGNORE = -100
MEM_TOKEN = "<MEM>"
AE_TOKEN = "<AE>"
SYSTEM_PROMPT = ("You are a helpful assistant. Your task is to extract relevant information "
                 "from provided documents and to answer to questions as briefly as possible.")
USER_PROMPT = "\n\nBackground:{documents}\n Question: {question}"
SPLITS = ("none", "paragraphs")
SHORT_TEXT = 64
"""Auto-encoding texts of at most this many ids are compressed as one chunk."""
_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")


def clean_text(text: str) -> str:
    """``text`` with the method's special token strings broken up, as the collators do."""
    return text.replace("<RET>", "< RET >").replace(MEM_TOKEN, "< MEM >")


def split_documents(context: str, split: str) -> list[str]:
    """The documents of a context: itself (``none``) or its blank-line separated paragraphs."""
    if split not in SPLITS:
        raise ValueError(f"pisco: split must be one of {', '.join(SPLITS)}, got {split!r}")
    if split == "none":
        return [context]
    paragraphs = [part.strip() for part in _PARAGRAPH_BREAK.split(context)]
    return [part for part in paragraphs if part] or [context]


def query_document(question: str, document: str) -> str:
    """A document as OSCAR's query-dependent compressor reads it."""
    return "Query: " + question + "\n Document: " + document


def memory_count(length: int, rate: int) -> int:
    """``<MEM>`` tokens appended to a chunk of ``length`` compressor ids."""
    return length // rate + 1


def chunk_ids(ids: Sequence[int], length: int) -> list[list[int]]:
    """Consecutive pieces of at most ``length`` ids (one empty piece for no ids)."""
    if not ids:
        return [[]]
    return [list(ids[start:start + length]) for start in range(0, len(ids), length)]


def random_chunks(ids: Sequence[int], max_length: int, rng: random.Random,
                  min_ratio: float = 0.8) -> list[list[int]]:
    """Pieces of random lengths in ``[min_ratio * max_length, max_length]``, the last one
    never shorter than that (pretraining's cut of long texts)."""
    shortest = max(1, int(max_length * min_ratio))
    pieces: list[list[int]] = []
    start = 0
    while start < len(ids):
        remaining = len(ids) - start
        if remaining <= max_length:
            pieces.append(list(ids[start:]))
            break
        tail = remaining - max_length
        size = max_length - (shortest - tail) if 0 < tail < shortest else \
            rng.randint(shortest, max_length)
        pieces.append(list(ids[start:start + size]))
        start += size
    return pieces


def with_memory(chunk: Sequence[int], mem_id: int, rate: int) -> list[int]:
    """The compressor row of a chunk: its ids then its ``<MEM>`` tokens."""
    return [*chunk, *[mem_id] * memory_count(len(chunk), rate)]


def left_pad(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(ids, attention_mask)`` of the rows padded on the left to the longest."""
    width = max(len(row) for row in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for index, row in enumerate(rows):
        if row:
            ids[index, width - len(row):] = torch.tensor(list(row), dtype=torch.long)
            mask[index, width - len(row):] = 1
    return ids, mask


def documents_text(mems_per_document: Sequence[int]) -> str:
    """``Document 0:<MEM>...Document 1:<MEM>...`` for the documents' memory counts."""
    return "".join(f"Document {index}:" + MEM_TOKEN * count
                   for index, count in enumerate(mems_per_document))


def qa_messages(mems_per_document: Sequence[int], question: str, answer: str
                ) -> list[dict[str, str]]:
    """The chat of a QA example (``answer`` "" when generating, as the reference does)."""
    user = USER_PROMPT.format(documents=documents_text(mems_per_document), question=question)
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user},
            {"role": "assistant", "content": answer}]


@dataclass(frozen=True)
class DecoderIds:
    """The decoder's special ids (``bos`` None for a tokenizer without one)."""

    mem: int
    ae: int
    bos: int | None
    eos: int
    pad: int

    def regeneration_prefix(self, memories: int) -> list[int]:
        """``<AE>`` + ``<MEM>`` x ``memories`` + BOS: what the text is regenerated after."""
        return [self.ae, *[self.mem] * memories, *([] if self.bos is None else [self.bos])]

    def mask_special(self, labels: torch.Tensor) -> torch.Tensor:
        """Labels with ``<AE>``, padding, BOS and ``<MEM>`` ids ignored."""
        special = [self.ae, self.pad, self.mem, *([] if self.bos is None else [self.bos])]
        for token in special:
            labels = labels.masked_fill(labels == token, IGNORE)
        return labels


def regeneration_text(memories: int, bos: str, eos: str, text: str) -> str:
    """The auto-encoding decoder text (``bos``/``eos``: the tokens' strings, "" for none)."""
    return AE_TOKEN + MEM_TOKEN * memories + bos + text + eos


def mask_before_answer(labels: torch.Tensor, prefix_lengths: Sequence[int], pad_id: int
                       ) -> torch.Tensor:
    """Labels ignored before each row's answer: the reference masks the first
    ``pads - 4 + prefix`` positions (``prefix``: the prompt's length with an empty answer,
    ``pads``: the row's ids equal to the pad id), a margin that leaves the last prompt ids
    targets."""
    pads = (labels == pad_id).sum(dim=1) - 4
    limit = pads + torch.tensor(list(prefix_lengths), dtype=torch.long)
    positions = torch.arange(labels.shape[1]).expand_as(labels)
    return labels.masked_fill(positions < limit[:, None], IGNORE)
