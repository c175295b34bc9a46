"""Prefill with a press: the head whole, the pressed segment compressed by kvpress.

As kvpress's pipeline does, the press's hooks act on every attention layer after its forward:
the layer's cache already holds the segment's keys (rotary-encoded at their positions) and
values, the press replaces them with the entries it keeps, and the attention output is left as
it was (the next layer reads hidden states computed with the full cache). The kept entries keep
their rotary positions; the decoder's first token goes to the UNcompressed length
``len(head) + len(pressed)``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from transformers import DynamicCache

from bench.compressors.kvpress.compat import hooks_adapted
from bench.compressors.kvpress.segment import KeptObserver, head_kept


@dataclass(frozen=True)
class PressedCache:
    """Per-layer cache after the prefill: ``keys[i]``/``values[i]`` are
    ``[kv_heads, head + kept_i, head_dim]`` (the head's entries first)."""

    keys: tuple[torch.Tensor, ...]
    values: tuple[torch.Tensor, ...]
    head_tokens: int
    pressed_tokens: int

    @property
    def kept_per_layer(self) -> tuple[int, ...]:
        """Entries of the pressed segment each layer keeps (per KV head)."""
        return tuple(int(k.shape[-2]) - self.head_tokens for k in self.keys)

    @property
    def next_position(self) -> int:
        """Position of the first token after the prompt part in the cache (uncompressed)."""
        return self.head_tokens + self.pressed_tokens


@contextmanager
def _rotary_reference_removed(model: Any) -> Iterator[None]:
    """kvpress's ``press(model)`` gives every attention layer a ``rotary_emb`` reference;
    remove the ones it added when the block ends, so the model is left as it was."""
    layers = model.model.layers
    had = [hasattr(layer.self_attn, "rotary_emb") for layer in layers]
    try:
        yield
    finally:
        for layer, present in zip(layers, had, strict=True):
            if not present and hasattr(layer.self_attn, "rotary_emb"):
                del layer.self_attn.rotary_emb


def _forward(model: Any, ids: Sequence[int], start: int, cache: DynamicCache) -> None:
    device = next(model.parameters()).device
    input_ids = torch.tensor([list(ids)], dtype=torch.long, device=device)
    positions = torch.arange(start, start + len(ids), device=device)[None]
    model(input_ids=input_ids, position_ids=positions, past_key_values=cache, use_cache=True,
          logits_to_keep=1)


@torch.no_grad()
def press_prefill(model: Any, press: Any | None, head: Sequence[int], pressed: Sequence[int],
                  observer: KeptObserver | None = None) -> PressedCache:
    """The cache of ``head + pressed`` with ``press`` applied to the pressed segment only
    (``press`` None: the full cache through the same path)."""
    if not pressed:
        raise ValueError("the pressed segment is empty")
    cache = DynamicCache()
    if head:
        _forward(model, head, 0, cache)
    with ExitStack() as stack:
        if press is not None:
            stack.enter_context(_rotary_reference_removed(model))
            stack.enter_context(hooks_adapted(press, head_kept(len(head), observer)))
            stack.enter_context(press(model))
        _forward(model, pressed, len(head), cache)
    layers: list[Any] = list(cache.layers)
    keys = tuple(layer.keys[0].detach() for layer in layers)
    values = tuple(layer.values[0].detach() for layer in layers)
    return PressedCache(keys, values, len(head), len(pressed))
