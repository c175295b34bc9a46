"""A soft compression model: the shared encoder plus a method's decoder interface.

Subclasses (:mod:`.five_hundred_x`, :mod:`.icae`) say how the memory reaches the frozen
decoder; this class tokenises, batches and computes the training loss the same way for both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from bench.compressors.soft._cache import prefix_cache
from bench.compressors.soft._decode import DecoderItem
from bench.compressors.soft._encoder import EncoderOutput, LoraSettings, SoftEncoder, pad_left
from bench.compressors.soft._prompts import SpecialIds, qa_prompt_ids, text_ids
from bench.compressors.soft._torch import input_embedding

KINDS = ("regeneration", "qa")


@dataclass(frozen=True)
class Example:
    """One training example: regeneration (``target`` is the context) or QA."""

    context: str
    kind: str
    target: str
    question: str | None = None
    answers: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"example kind must be one of {KINDS}, got {self.kind!r}")
        if self.kind == "qa" and not self.question:
            raise ValueError("a QA example needs a question")


DECODER_POSITIONS = ("continue", "restart")


class SoftModel(nn.Module):
    """Encoder + method-specific decoder interface over one frozen base model."""

    method = ""
    uses_trigger = False
    #: Where the decoder's own tokens start after a KV memory (500x only): "continue" after
    #: the encoder's memory positions, or "restart" at k as the reference implementation does.
    decoder_positions = "continue"

    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, num_mem: int,
                 lora: LoraSettings, seed: int = 0, max_context_tokens: int = 500) -> None:
        super().__init__()
        self.tokenizer = tokenizer
        self.ids = SpecialIds.from_tokenizer(tokenizer)
        self.lora = lora
        self.seed = seed
        self.max_context_tokens = max_context_tokens
        self.encoder = SoftEncoder(model, num_mem, lora, self.uses_trigger, seed)
        self.last_batch_tokens = 0

    @property
    def base(self) -> PreTrainedModel:
        return self.encoder.base

    @property
    def num_mem(self) -> int:
        return self.encoder.num_mem

    @property
    def device(self) -> torch.device:
        return self.encoder.memory.device

    def context_ids(self, context: str) -> list[int]:
        """Context tokens as the encoder reads them: BOS (if any) + the first tokens."""
        ids = text_ids(self.tokenizer, context)[: self.max_context_tokens]
        return ([] if self.ids.bos is None else [self.ids.bos]) + ids

    def encode(self, contexts: Sequence[str]) -> EncoderOutput:
        """Encode a batch of contexts (left-padded)."""
        rows = [self.context_ids(context) for context in contexts]
        ids, mask = pad_left(rows, self.ids.pad, self.device)
        return self.encoder.encode(ids, mask)

    def prompt_ids(self, kind: str, question: str | None) -> list[int]:
        """Token ids following the memory (and trigger) for this kind of request."""
        if kind == "qa":
            if question is None:
                raise ValueError(f"{self.method}: a QA prompt needs the question")
            return qa_prompt_ids(self.tokenizer, question)
        if kind == "regeneration":
            return self.regeneration_prompt_ids()
        raise ValueError(f"{self.method}: unknown prompt kind {kind!r}; expected one of {KINDS}")

    def regeneration_prompt_ids(self) -> list[int]:
        raise NotImplementedError

    def decoder_input(self, memory: EncoderOutput, row: int, kind: str,
                      prompt_ids: Sequence[int]) -> DecoderItem:
        """The decoder input of batch row ``row`` (tensors keep their graph for training)."""
        raise NotImplementedError

    def forward(self, examples: Sequence[Example]) -> torch.Tensor:
        """The training loss (see :meth:`loss`); ``forward`` so that DDP wrappers work."""
        return self.loss(examples)

    def loss(self, examples: Sequence[Example]) -> torch.Tensor:
        """Mean token cross-entropy of the targets (+ EOS) given the compressed contexts."""
        memory = self.encode([example.context for example in examples])
        items: list[DecoderItem] = []
        targets: list[list[int]] = []
        for row, example in enumerate(examples):
            prompt = self.prompt_ids(example.kind, example.question)
            items.append(self.decoder_input(memory, row, example.kind, prompt))
            if example.kind == "regeneration":
                target = self.context_ids(example.target)[0 if self.ids.bos is None else 1:]
            else:
                target = text_ids(self.tokenizer, example.target)
            targets.append([*target, self.ids.eos])
        encoder_tokens = sum(len(self.context_ids(e.context)) + self.num_mem for e in examples)
        decoder_tokens = sum(item.input_length + len(target) - 1
                             for item, target in zip(items, targets, strict=True))
        self.last_batch_tokens = encoder_tokens + decoder_tokens
        return decoder_loss(self.base, items, targets)


def decoder_loss(model: PreTrainedModel, items: Sequence[DecoderItem],
                 targets: Sequence[Sequence[int]]) -> torch.Tensor:
    """Teacher-forced loss of ``targets`` after each item (right-padded, differentiable).

    Every item must have the same memory length (true for a fixed k).
    """
    embedding = input_embedding(model)
    device = embedding.weight.device
    rows: list[torch.Tensor] = []
    labels: list[list[int]] = []
    positions: list[torch.Tensor] = []
    for item, target in zip(items, targets, strict=True):
        ids = torch.tensor([*item.prompt_ids, *target[:-1]], dtype=torch.long, device=device)
        parts = [embedding(ids)]
        if item.embeds is not None:
            parts.insert(0, item.embeds.to(parts[0].dtype))
        row = torch.cat(parts)
        rows.append(row)
        n_context = row.shape[0] - len(target)
        labels.append([-100] * n_context + list(target))
        start = item.position_offset
        positions.append(torch.arange(start, start + row.shape[0], device=device))
    length = max(row.shape[0] for row in rows)
    batch = len(rows)
    inputs = rows[0].new_zeros(batch, length, rows[0].shape[1])
    mask = torch.zeros(batch, length, dtype=torch.long, device=device)
    label_t = torch.full((batch, length), -100, dtype=torch.long, device=device)
    position_t = torch.zeros(batch, length, dtype=torch.long, device=device)
    for i, (row, row_labels, row_pos) in enumerate(zip(rows, labels, positions, strict=True)):
        size = row.shape[0]
        inputs[i, :size] = row
        mask[i, :size] = 1
        label_t[i, :size] = torch.tensor(row_labels, dtype=torch.long, device=device)
        position_t[i, :size] = row_pos
    cache = None
    if items[0].keys:
        keys = [torch.stack([item.keys[layer] for item in items])
                for layer in range(len(items[0].keys))]
        values = [torch.stack([item.values[layer] for item in items])
                  for layer in range(len(items[0].values))]
        cache = prefix_cache(keys, values)
        mask = torch.cat([mask.new_ones(batch, keys[0].shape[-2]), mask], dim=1)
    out = model(inputs_embeds=inputs, attention_mask=mask, position_ids=position_t,
                past_key_values=cache, use_cache=False)
    logits = out.logits.float()
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), label_t.reshape(-1),
                           ignore_index=-100)
