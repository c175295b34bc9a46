"""A soft compression model: the shared encoder plus a method's decoder interface.

Subclasses (:mod:`.five_hundred_x`, :mod:`.icae`) say how the memory reaches the frozen
decoder; this class builds the encoder ids and the training rows of the model's layout
(:mod:`._layout`), batches them and computes the training loss the same way for both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from bench.compressors.soft._cache import prefix_cache
from bench.compressors.soft._prompts import SpecialIds, qa_prompt_ids, text_ids
from bench.compressors.soft._torch import input_embedding
from bench.compressors.soft.decode import DecoderItem
from bench.compressors.soft.encoder.encoder import (
    EncoderOutput,
    LoraSettings,
    SoftEncoder,
    pad_left,
)
from bench.compressors.soft.encoder.layout import (
    IGNORE,
    Layout,
    padded_context,
    qa_rows,
    regeneration_labels,
)
from bench.training.example import KINDS, Example


@dataclass(frozen=True)
class TrainingIds:
    """One example's training inputs: the encoder ids, the decoder's token ids (after the
    method's input vectors, if any) and one label per decoder input position (-100: none)."""

    encoder_ids: list[int]
    decoder_ids: list[int]
    labels: list[int]


@dataclass(frozen=True)
class TrainingBatch:
    """A tokenised batch (:meth:`SoftModel.training_batch`, e.g. a DataLoader's collate).

    ``encoder_ids`` ``[batch, length]`` (left-padded with ``encoder_mask`` in the compressbench
    layout; ``encoder_mask`` is None in the reference layout), each row's decoder token ids
    and kind, and ``labels`` ``[batch, longest decoder input]`` (one per decoder input
    position, right-padded with -100; ``input_lengths`` says where each row's end).
    ``target_tokens`` counts the labels that are targets; ``tokens`` the encoder inputs, memory
    slots and decoder inputs of the batch.
    """

    kinds: tuple[str, ...]
    decoder_ids: tuple[tuple[int, ...], ...]
    input_lengths: tuple[int, ...]
    encoder_ids: torch.Tensor
    encoder_mask: torch.Tensor | None
    labels: torch.Tensor
    target_tokens: int
    tokens: int

    def __len__(self) -> int:
        return len(self.kinds)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> TrainingBatch:
        """The batch with its tensors on ``device``."""
        mask = self.encoder_mask
        return replace(self,
                       encoder_ids=self.encoder_ids.to(device, non_blocking=non_blocking),
                       encoder_mask=None if mask is None else mask.to(
                           device, non_blocking=non_blocking),
                       labels=self.labels.to(device, non_blocking=non_blocking))


class SoftModel(nn.Module):
    """Encoder + method-specific decoder interface over one frozen base model."""

    method = ""
    uses_trigger = False
    #: The checkpoint file the weights came from when it lacked the trigger (a QA-only
    #: checkpoint of the 500xCompressor code's ICAE): requests that need it are refused.
    missing_trigger_source: str | None = None

    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, num_mem: int,
                 lora: LoraSettings, seed: int = 0, layout: Layout | None = None) -> None:
        super().__init__()
        self.tokenizer = tokenizer
        self.ids = SpecialIds.from_tokenizer(tokenizer)
        self.lora = lora
        self.seed = seed
        self.layout = layout or Layout()
        self.encoder = SoftEncoder(model, num_mem, lora, self.uses_trigger, seed)

    @property
    def base(self) -> PreTrainedModel:
        return self.encoder.base

    @property
    def num_mem(self) -> int:
        return self.encoder.num_mem

    @property
    def max_context_tokens(self) -> int:
        return self.layout.max_context_tokens

    @property
    def device(self) -> torch.device:
        return self.encoder.memory.device

    def encoder_ids(self, context: str, truncation: int | None = None) -> list[int]:
        """The encoder's ids of ``context`` (cut to ``truncation``, default
        ``max_context_tokens``): EOS-padded to ``context_length`` (reference layout) or after
        BOS (compressbench layout)."""
        limit = self.layout.max_context_tokens if truncation is None else truncation
        ids = text_ids(self.tokenizer, context)
        if self.layout.is_reference:
            return padded_context(ids, limit, self.layout.context_length, self.ids.eos)
        return ([] if self.ids.bos is None else [self.ids.bos]) + ids[:limit]

    def encode(self, contexts: Sequence[str]) -> EncoderOutput:
        """Encode a batch of contexts as inference does."""
        return self.encode_ids([self.encoder_ids(context) for context in contexts])

    def encode_ids(self, rows: Sequence[Sequence[int]]) -> EncoderOutput:
        """Encode rows of encoder ids (``encoder_ids`` output): unmasked fixed-length rows in
        the reference layout, left-padded with a mask in the compressbench layout."""
        if self.layout.is_reference:
            if len({len(row) for row in rows}) != 1:
                raise ValueError("reference-layout encoder rows must all have one length")
            ids = torch.tensor([list(row) for row in rows], dtype=torch.long, device=self.device)
            return self.encoder.encode(ids, None)
        ids, mask = pad_left(rows, self.ids.pad, self.device)
        return self.encoder.encode(ids, mask)

    def prompt_ids(self, kind: str, question: str | None) -> list[int]:
        """Token ids following the memory (and trigger) for this kind of request."""
        if kind == "qa":
            if question is None:
                raise ValueError(f"{self.method}: a QA prompt needs the question")
            return qa_prompt_ids(self.tokenizer,
                                 question if self.layout.is_reference else question.strip())
        if kind == "regeneration":
            return self.regeneration_prompt_ids()
        raise ValueError(f"{self.method}: unknown prompt kind {kind!r}; expected one of {KINDS}")

    def regeneration_prompt_ids(self) -> list[int]:
        raise NotImplementedError

    def decoder_prefix_length(self, kind: str) -> int:
        """Input vectors the decoder reads before its token ids (none by default)."""
        return 0

    def decoder_input(self, memory: EncoderOutput, row: int, kind: str,
                      prompt_ids: Sequence[int]) -> DecoderItem:
        """The decoder input of batch row ``row`` (tensors keep their graph for training)."""
        raise NotImplementedError

    def training_ids(self, example: Example) -> TrainingIds:
        """Encoder ids, decoder ids and labels of one example (see :mod:`._layout`)."""
        if self.layout.is_reference:
            return self._reference_training_ids(example)
        return self._compressbench_training_ids(example)

    def _reference_training_ids(self, example: Example) -> TrainingIds:
        layout, eos = self.layout, self.ids.eos
        encoder = self.encoder_ids(example.context, layout.context_length)
        skipped = self.decoder_prefix_length(example.kind)
        if example.kind == "qa":
            question = self.prompt_ids("qa", example.question)
            answer = text_ids(self.tokenizer, example.target)
            decoder, labels = qa_rows(question, answer, layout.max_qa_len, eos)
            return TrainingIds(encoder, decoder, [IGNORE] * skipped + labels)
        prompt = self.regeneration_prompt_ids()
        real = len(text_ids(self.tokenizer, example.context))
        targets = regeneration_labels(encoder, real, eos, layout.loss_on_padding)
        labels = [IGNORE] * (skipped + len(prompt) - 1) + targets
        return TrainingIds(encoder, [*prompt, *encoder], labels)

    def _compressbench_training_ids(self, example: Example) -> TrainingIds:
        encoder = self.encoder_ids(example.context)
        prompt = self.prompt_ids(example.kind, example.question)
        if example.kind == "regeneration":
            target = text_ids(self.tokenizer, example.target)[: self.layout.max_context_tokens]
        else:
            target = text_ids(self.tokenizer, example.target)
        target.append(self.ids.eos)
        skipped = self.decoder_prefix_length(example.kind) + len(prompt) - 1
        return TrainingIds(encoder, [*prompt, *target[:-1]], [IGNORE] * skipped + target)

    def training_batch(self, examples: Sequence[Example]) -> TrainingBatch:
        """Tokenise and pad ``examples`` (CPU tensors; no parameter is read)."""
        if not examples:
            raise ValueError("a training batch needs at least one example")
        rows = [self.training_ids(example) for example in examples]
        encoder_rows = [row.encoder_ids for row in rows]
        cpu = torch.device("cpu")
        mask: torch.Tensor | None = None
        if self.layout.is_reference:
            if len({len(row) for row in encoder_rows}) != 1:
                raise ValueError("reference-layout encoder rows must all have one length")
            ids = torch.tensor(encoder_rows, dtype=torch.long)
        else:
            ids, mask = pad_left(encoder_rows, self.ids.pad, cpu)
        width = max(len(row.labels) for row in rows)
        labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
        for index, row in enumerate(rows):
            labels[index, :len(row.labels)] = torch.tensor(row.labels, dtype=torch.long)
        tokens = sum(len(row.encoder_ids) + self.num_mem + len(row.labels) for row in rows)
        return TrainingBatch(
            kinds=tuple(example.kind for example in examples),
            decoder_ids=tuple(tuple(row.decoder_ids) for row in rows),
            input_lengths=tuple(len(row.labels) for row in rows),
            encoder_ids=ids, encoder_mask=mask, labels=labels,
            target_tokens=int((labels != IGNORE).sum()), tokens=tokens)

    def forward(self, examples: Sequence[Example]) -> torch.Tensor:
        """The training loss (see :meth:`loss`); ``forward`` so that DDP wrappers work."""
        return self.loss(examples)

    def summed_loss(self, batch: TrainingBatch) -> torch.Tensor:
        """The summed token cross-entropy of ``batch`` over its targets (``loss`` divides it
        by ``batch.target_tokens``; training divides by the targets of the global batch).
        The encoder runs through its ``forward``, where the memory is read."""
        memory = self.encoder(batch.encoder_ids.to(self.device), None if batch.encoder_mask
                              is None else batch.encoder_mask.to(self.device))
        items = [self.decoder_input(memory, index, kind, ids)
                 for index, (kind, ids) in enumerate(zip(batch.kinds, batch.decoder_ids,
                                                         strict=True))]
        for index, (item, length) in enumerate(zip(items, batch.input_lengths, strict=True)):
            if item.input_length != length:
                raise ValueError(f"row {index}: {length} labels for {item.input_length} "
                                 "decoder inputs")
        return decoder_loss_sum(self.base, items, batch.labels)

    def loss(self, examples: Sequence[Example]) -> torch.Tensor:
        """Mean token cross-entropy over every labelled decoder position of the batch."""
        batch = self.training_batch(examples)
        return self.summed_loss(batch) / batch.target_tokens


def decoder_loss_sum(model: PreTrainedModel, items: Sequence[DecoderItem],
                     labels: torch.Tensor) -> torch.Tensor:
    """Summed cross-entropy of ``labels`` ``[batch, width]`` (one per input position of each
    item, right-padded with -100; -100 ignored) against the decoder's logits at those
    positions: no shift inside the loss.

    Rows are right-padded and masked; every item must have the same memory length.
    """
    embedding = input_embedding(model)
    device = embedding.weight.device
    rows: list[torch.Tensor] = []
    for item in items:
        parts = []
        if item.embeds is not None:
            parts.append(item.embeds.to(embedding.weight.dtype))
        if item.prompt_ids:
            ids = torch.tensor(item.prompt_ids, dtype=torch.long, device=device)
            parts.append(embedding(ids))
        rows.append(torch.cat(parts))
    length = max(row.shape[0] for row in rows)
    batch = len(rows)
    inputs = rows[0].new_zeros(batch, length, rows[0].shape[1])
    mask = torch.zeros(batch, length, dtype=torch.long, device=device)
    position_t = torch.zeros(batch, length, dtype=torch.long, device=device)
    for i, (item, row) in enumerate(zip(items, rows, strict=True)):
        size = row.shape[0]
        inputs[i, :size] = row
        mask[i, :size] = 1
        start = item.position_offset
        position_t[i, :size] = torch.arange(start, start + size, device=device)
    label_t = labels[:, :length].to(device)
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
    summed: torch.Tensor = F.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                           label_t.reshape(-1), ignore_index=IGNORE,
                                           reduction="sum")
    return summed
