"""Greedy decoding from input embeddings, returning token ids (ICAE v2's decoder loop).

Each item's embeddings start at position 0; a batch is left-padded and masked so every item
decodes as it would alone. The argmax runs over the first ``vocab_size`` logits; the EOS id
ends an item and is reported, not appended.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from transformers import PreTrainedModel

from bench.compressors.soft.decode import DecoderItem, prepare_batch


@dataclass(frozen=True)
class GreedyResult:
    """Generated ids (without EOS), whether generation stopped at EOS, and the wall time and
    time to first token of the batch the item was decoded in (the latency it saw)."""

    token_ids: tuple[int, ...]
    stopped_at_eos: bool
    seconds: float
    ttft_seconds: float


StopCheck = Callable[[list[int]], bool]


@torch.no_grad()
def greedy_ids(model: PreTrainedModel, embeds: Sequence[torch.Tensor], max_new_tokens: int,
               eos_ids: Sequence[int], vocab_size: int, stop: StopCheck | None = None
               ) -> list[GreedyResult]:
    """Greedy continuation of each ``[length, hidden]`` input; ``stop(ids)`` ends an item early."""
    if not embeds:
        return []
    start = time.perf_counter()
    batch = prepare_batch(model, [DecoderItem(prompt_ids=(), embeds=e) for e in embeds])
    out = model(inputs_embeds=batch.inputs_embeds, attention_mask=batch.attention_mask,
                position_ids=batch.position_ids, use_cache=True, logits_to_keep=1)
    ttft = time.perf_counter() - start
    tokens: list[list[int]] = [[] for _ in embeds]
    at_eos = [False] * len(embeds)
    done = [False] * len(embeds)
    mask = batch.attention_mask
    position = batch.position_ids[:, -1:]
    eos = set(eos_ids)
    for step in range(max_new_tokens):
        next_ids = out.logits[:, -1, :vocab_size].argmax(dim=-1)
        for row, token in enumerate(next_ids.tolist()):
            if done[row]:
                continue
            if token in eos:
                done[row] = at_eos[row] = True
                continue
            tokens[row].append(token)
            done[row] = stop is not None and stop(tokens[row])
        if all(done) or step + 1 == max_new_tokens:
            break
        mask = torch.cat([mask, mask.new_ones(len(embeds), 1)], dim=1)
        position = position + 1
        out = model(input_ids=next_ids[:, None], attention_mask=mask, position_ids=position,
                    past_key_values=out.past_key_values, use_cache=True)
    seconds = time.perf_counter() - start
    return [GreedyResult(tuple(ids), stopped, seconds, ttft)
            for ids, stopped in zip(tokens, at_eos, strict=True)]
