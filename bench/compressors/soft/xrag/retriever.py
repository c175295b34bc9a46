"""The sentence embedder xRAG compresses documents with (SFR-Embedding-Mistral in the paper).

A document is tokenised by the retriever's tokenizer (its special tokens, i.e. BOS, cut to
``max_length`` ids); its embedding is the last hidden state (after the final norm) at its
last token, not normalised. Documents are batched right-padded with attention masks, so
each keeps positions ``0..n-1`` and its embedding does not depend on the batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from bench.compressors.soft._prompts import text_ids


@dataclass(frozen=True)
class DocumentBatch:
    """Right-padded retriever ids of documents and their attention mask."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor

    @property
    def tokens(self) -> int:
        return int(self.attention_mask.sum())

    def to(self, device: torch.device | str, non_blocking: bool = False) -> DocumentBatch:
        return DocumentBatch(self.input_ids.to(device, non_blocking=non_blocking),
                             self.attention_mask.to(device, non_blocking=non_blocking))


def pad_id(tokenizer: Any) -> int:
    """The retriever's padding id: its pad token, else EOS (masked out either way)."""
    found = tokenizer.pad_token_id if tokenizer.pad_token_id is not None \
        else tokenizer.eos_token_id
    if found is None:
        raise ValueError("xrag: the retriever's tokenizer has neither a pad nor an EOS token")
    return int(found)


def document_ids(tokenizer: Any, documents: Sequence[str], max_length: int) -> list[list[int]]:
    """Each document's retriever ids (special tokens added, cut to ``max_length``)."""
    return [list(tokenizer(document, max_length=max_length, truncation=True)["input_ids"])
            for document in documents]


def document_batch(rows: Sequence[Sequence[int]], padding: int) -> DocumentBatch:
    """``rows`` right-padded with ``padding`` into one batch with its mask."""
    if not rows or min(len(row) for row in rows) == 0:
        raise ValueError("xrag: every document needs at least one retriever token")
    width = max(len(row) for row in rows)
    ids = torch.full((len(rows), width), padding, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for index, row in enumerate(rows):
        ids[index, :len(row)] = torch.tensor(list(row), dtype=torch.long)
        mask[index, :len(row)] = 1
    return DocumentBatch(ids, mask)


def last_token_embeddings(model: Any, batch: DocumentBatch) -> torch.Tensor:
    """``[documents, hidden]``: each row's final hidden state at its last real token."""
    device = next(model.parameters()).device
    batch = batch.to(device)
    hidden: torch.Tensor = model(input_ids=batch.input_ids,
                                 attention_mask=batch.attention_mask).last_hidden_state
    last = batch.attention_mask.sum(dim=1) - 1
    return hidden[torch.arange(hidden.shape[0], device=device), last]


def split_by_tokens(tokenizer: Any, text: str, chunk_tokens: int, max_tokens: int | None,
                    min_last_tokens: int = 20) -> list[str]:
    """``text`` cut into pieces of ``chunk_tokens`` retriever tokens (the first
    ``max_tokens`` only, None: all), each decoded back to text; a last piece of at most
    ``min_last_tokens`` tokens is dropped when there are several (the reference's
    fine-tuning split of a long background)."""
    ids = text_ids(tokenizer, text)[:max_tokens]
    pieces = [ids[start:start + chunk_tokens] for start in range(0, len(ids), chunk_tokens)]
    if not pieces:
        raise ValueError("xrag: an empty document cannot be embedded")
    if len(pieces) > 1 and len(pieces[-1]) <= min_last_tokens:
        pieces = pieces[:-1]
    return [str(tokenizer.decode(piece)) for piece in pieces]


@dataclass
class Retriever:
    """A loaded retriever: its model (eval mode) and tokenizer."""

    name: str
    model: Any
    tokenizer: Any
    max_length: int

    @property
    def hidden_size(self) -> int:
        return int(self.model.config.hidden_size)

    def batch(self, documents: Sequence[str]) -> DocumentBatch:
        """The retriever batch of ``documents``."""
        rows = document_ids(self.tokenizer, documents, self.max_length)
        return document_batch(rows, pad_id(self.tokenizer))

    @torch.no_grad()
    def embed(self, documents: Sequence[str]) -> torch.Tensor:
        """``[documents, hidden]`` embeddings of ``documents``."""
        return last_token_embeddings(self.model, self.batch(documents))


def load_retriever(name: str, dtype: torch.dtype, device: torch.device, max_length: int,
                   flag: str) -> Retriever:
    """The retriever ``name`` (hub id or folder) in ``dtype`` on ``device`` (``flag``: how
    a local path is given, for the error of a hub id that cannot be loaded)."""
    from transformers import AutoModel, AutoTokenizer

    from bench.hub import load_from_hub

    tokenizer = load_from_hub(lambda: AutoTokenizer.from_pretrained(name), name,
                              "retriever tokenizer", flag)
    model = load_from_hub(lambda: AutoModel.from_pretrained(name, dtype=dtype), name,
                          "retriever", flag)
    model.requires_grad_(False)
    return Retriever(name, model.to(device).eval(), tokenizer, max_length)
