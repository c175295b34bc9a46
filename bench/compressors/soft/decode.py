"""Batched greedy decoding from soft prefixes (key/value memory and/or input embeddings).

Every item is laid out as ``[memory KV] [prefix embeddings] [prompt tokens] -> generated``.
Items of a batch are left-padded separately in the cache part and in the input part; padded
positions are masked out and every real token keeps the position it has when decoded alone,
so a batch gives the same tokens as decoding each item by itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from bench.compressors.soft._cache import kv_cache
from bench.compressors.soft._torch import input_embedding
from bench.generation import DecoderPrompt, GenerationOutput, GenerationSettings
from bench.records import CompressedContext


@dataclass(frozen=True)
class DecoderItem:
    """One decoder input.

    ``keys``/``values``: per-layer memory states ``[kv_heads, slots, head_dim]`` (empty for
    none) whose rotary positions end just before ``position_offset``; ``embeds``: input
    vectors ``[n, hidden]`` placed before ``prompt_ids`` (None for none). The first input
    vector or token sits at position ``position_offset``.
    """

    prompt_ids: tuple[int, ...]
    keys: tuple[torch.Tensor, ...] = ()
    values: tuple[torch.Tensor, ...] = ()
    embeds: torch.Tensor | None = None
    position_offset: int = 0

    @property
    def memory_length(self) -> int:
        return int(self.keys[0].shape[-2]) if self.keys else 0

    @property
    def input_length(self) -> int:
        n_embeds = 0 if self.embeds is None else int(self.embeds.shape[0])
        return n_embeds + len(self.prompt_ids)


@dataclass(frozen=True)
class PreparedBatch:
    """Padded tensors of a batch: decoder inputs plus the cache they attend to."""

    inputs_embeds: torch.Tensor
    attention_mask: torch.Tensor
    position_ids: torch.Tensor
    keys: list[torch.Tensor]
    values: list[torch.Tensor]


def _pad_memory(items: Sequence[DecoderItem], num_layers: int, like: torch.Tensor
                ) -> tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor]:
    length = max(item.memory_length for item in items)
    mask = torch.zeros(len(items), length, dtype=torch.long, device=like.device)
    if length == 0:
        return [], [], mask
    template = next(item for item in items if item.keys)
    keys: list[torch.Tensor] = []
    values: list[torch.Tensor] = []
    for layer in range(num_layers):
        for source, out in ((template.keys, keys), (template.values, values)):
            heads, _, dim = source[layer].shape
            padded = torch.zeros(len(items), heads, length, dim, dtype=like.dtype,
                                 device=like.device)
            out.append(padded)
    for row, item in enumerate(items):
        size = item.memory_length
        if size == 0:
            continue
        mask[row, length - size:] = 1
        for layer in range(num_layers):
            keys[layer][row, :, length - size:] = item.keys[layer].to(like)
            values[layer][row, :, length - size:] = item.values[layer].to(like)
    return keys, values, mask


def input_embeddings(model: PreTrainedModel, item: DecoderItem) -> torch.Tensor:
    """The item's input vectors ``[input_length, hidden]``: its ``embeds``, then its prompt
    tokens through the model's input embedding table, in that table's dtype and device."""
    if item.input_length == 0:
        raise ValueError("a decoder item needs at least one input vector or prompt token")
    embedding = input_embedding(model)
    like = embedding.weight
    parts = []
    if item.embeds is not None:
        parts.append(item.embeds.to(like))
    if item.prompt_ids:
        ids = torch.tensor(item.prompt_ids, dtype=torch.long, device=like.device)
        parts.append(embedding(ids))
    return torch.cat(parts)


@torch.no_grad()
def prompt_embeddings(model: PreTrainedModel, item: DecoderItem) -> torch.Tensor:
    """The whole decoder input of an item without key/value memory whose first vector sits
    at position 0 (:func:`input_embeddings`): what a server taking prompt embeddings reads."""
    if item.keys or item.position_offset != 0:
        raise ValueError("a decoder item with key/value memory or a position offset has no "
                         "prompt-embeddings form")
    return input_embeddings(model, item)


def prepare_batch(model: PreTrainedModel, items: Sequence[DecoderItem]) -> PreparedBatch:
    """Left-pad the items' cache and input parts and compute masks and positions."""
    like = input_embedding(model).weight
    keys, values, memory_mask = _pad_memory(items, model.config.num_hidden_layers, like)
    length = max(item.input_length for item in items)
    if length == 0:
        raise ValueError("a decoder item needs at least one input vector or prompt token")
    hidden = like.shape[1]
    embeds = torch.zeros(len(items), length, hidden, dtype=like.dtype, device=like.device)
    input_mask = torch.zeros(len(items), length, dtype=torch.long, device=like.device)
    positions = torch.zeros(len(items), length, dtype=torch.long, device=like.device)
    for row, item in enumerate(items):
        size = item.input_length
        embeds[row, length - size:] = input_embeddings(model, item)
        input_mask[row, length - size:] = 1
        start = item.position_offset
        positions[row, length - size:] = torch.arange(start, start + size, device=like.device)
        positions[row, : length - size] = start
    mask = torch.cat([memory_mask, input_mask], dim=1)
    return PreparedBatch(embeds, mask, positions, keys, values)


@dataclass(frozen=True)
class GreedyIds:
    """Greedy ids of one item: the generated tokens and the EOS id that stopped it, if any."""

    tokens: list[int]
    stop_eos: int | None

    @property
    def with_eos(self) -> list[int]:
        """The tokens plus the stopping EOS (the reference implementations' convention)."""
        return self.tokens + ([] if self.stop_eos is None else [self.stop_eos])


@torch.no_grad()
def greedy_ids(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    items: Sequence[DecoderItem],
    settings: GenerationSettings,
    eos_token_ids: Sequence[int],
) -> tuple[list[GreedyIds], float, float]:
    """Greedy continuation of every item (stops at EOS, a stop string or the token limit);
    also returns the batch's wall time and time to first token."""
    start = time.perf_counter()
    batch = prepare_batch(model, items)
    cache = kv_cache(batch.keys, batch.values) if batch.keys else None
    out = model(inputs_embeds=batch.inputs_embeds, attention_mask=batch.attention_mask,
                position_ids=batch.position_ids, past_key_values=cache, use_cache=True,
                logits_to_keep=1)
    ttft = time.perf_counter() - start
    tokens: list[list[int]] = [[] for _ in items]
    stops: list[int | None] = [None] * len(items)
    done = [False] * len(items)
    mask = batch.attention_mask
    position = batch.position_ids[:, -1:]
    eos = set(eos_token_ids)
    for step in range(settings.max_new_tokens):
        next_ids = out.logits[:, -1].argmax(dim=-1)
        for row, token in enumerate(next_ids.tolist()):
            if done[row]:
                continue
            if token in eos:
                done[row], stops[row] = True, token
                continue
            tokens[row].append(token)
            if settings.until and _hits_stop(tokenizer, tokens[row], settings):
                done[row] = True
        if all(done) or step + 1 == settings.max_new_tokens:
            break
        mask = torch.cat([mask, mask.new_ones(len(items), 1)], dim=1)
        position = position + 1
        out = model(input_ids=next_ids[:, None], attention_mask=mask, position_ids=position,
                    past_key_values=out.past_key_values, use_cache=True)
    results = [GreedyIds(row, stop) for row, stop in zip(tokens, stops, strict=True)]
    return results, time.perf_counter() - start, ttft


def greedy_generate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    items: Sequence[DecoderItem],
    settings: GenerationSettings,
    eos_token_ids: Sequence[int],
) -> list[GenerationOutput]:
    """Greedy answers of every item (see :func:`greedy_ids`).

    ``seconds`` and ``ttft_seconds`` are the batch's wall time and time to first token: the
    latency each item saw, as for text prompts answered by lm-eval's ``hf`` backend.
    """
    if not items:
        return []
    generated, elapsed, ttft = greedy_ids(model, tokenizer, items, settings, eos_token_ids)
    results = []
    for row in generated:
        text = settings.cut_at_stop(str(tokenizer.decode(row.tokens, skip_special_tokens=True)))
        results.append(GenerationOutput(text, len(row.tokens), elapsed, ttft))
    return results


def greedy_generate_in_batches(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    items: Sequence[tuple[CompressedContext, DecoderPrompt]],
    decoder_item: Callable[[CompressedContext, DecoderPrompt], DecoderItem],
    batch_size: int,
    settings: GenerationSettings,
    eos_token_ids: Sequence[int],
) -> list[GenerationOutput]:
    """:func:`greedy_generate` over ``items`` in batches of ``batch_size``, each item's
    decoder input built (by ``decoder_item``) only when its batch is answered."""
    outputs: list[GenerationOutput] = []
    for start in range(0, len(items), batch_size):
        batch = [decoder_item(context, prompt) for context, prompt in
                 items[start:start + batch_size]]
        outputs.extend(greedy_generate(model, tokenizer, batch, settings, eos_token_ids))
    return outputs


def _hits_stop(tokenizer: PreTrainedTokenizerBase, tokens: list[int],
               settings: GenerationSettings) -> bool:
    text = str(tokenizer.decode(tokens, skip_special_tokens=True))
    return settings.cut_at_stop(text) != text
