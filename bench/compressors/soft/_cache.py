"""Cache objects for passing memory key/value states between the encoder and the decoder.

* :func:`kv_cache` - a standard ``DynamicCache`` pre-filled with per-layer states (inference:
  the decoder then appends its own tokens as usual).
* :func:`prefix_cache` - a read-only prefix: every attention call sees ``prefix + new`` states
  but nothing is stored, so a layer replayed by gradient checkpointing sees the same states.
* :func:`recording_cache` - captures each layer's key/value states of one forward pass (the
  encoder): the states of the last replay overwrite the previous ones instead of growing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from transformers import Cache, DynamicCache
from transformers.cache_utils import DynamicLayer


def kv_cache(keys: Sequence[torch.Tensor], values: Sequence[torch.Tensor]) -> DynamicCache:
    """A ``DynamicCache`` holding ``keys[i]``/``values[i]`` ``[batch, kv_heads, seq, head_dim]``."""
    cache = DynamicCache()
    for layer, (key, value) in enumerate(zip(keys, values, strict=True)):
        cache.update(key, value, layer)
    return cache


class _PrefixLayer(DynamicLayer):  # type: ignore[no-untyped-call]
    def __init__(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.lazy_initialization(keys, values)
        self.keys, self.values = keys, values

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        assert self.keys is not None and self.values is not None
        keys = torch.cat([self.keys, key_states], dim=-2)
        values = torch.cat([self.values, value_states], dim=-2)
        return keys, values


class _RecordingLayer(DynamicLayer):  # type: ignore[no-untyped-call]
    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        self.keys, self.values = key_states, value_states
        return key_states, value_states

    def get_seq_length(self) -> int:
        return 0


def prefix_cache(keys: Sequence[torch.Tensor], values: Sequence[torch.Tensor]) -> Cache:
    """A read-only cache whose every layer starts with the given states (training path)."""
    layers = [_PrefixLayer(k, v) for k, v in zip(keys, values, strict=True)]
    return Cache(layers=layers)  # type: ignore[arg-type]


def recording_cache(num_layers: int) -> Cache:
    """An empty cache that keeps the states of the latest pass of each layer."""
    layers = [_RecordingLayer() for _ in range(num_layers)]  # type: ignore[no-untyped-call]
    return Cache(layers=layers)  # type: ignore[arg-type]


def layer_states(cache: Cache) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Per-layer ``(keys, values)`` lists of a filled cache."""
    keys = [layer.keys for layer in cache.layers]  # type: ignore[union-attr]
    values = [layer.values for layer in cache.layers]  # type: ignore[union-attr]
    return keys, values  # type: ignore[return-value]
