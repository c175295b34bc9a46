"""The press sees only the pressed segment of the cache; the head before it stays whole.

The prompt's head (the task instruction before the context) is prefilled first, without a
press; the pressed segment follows in a second forward pass with the press's hooks on. In that
pass the hook's hidden states and rotary embeddings are already those of the segment alone, but
the cache and the attention weights span head + segment. :func:`head_kept` shows kvpress a
cache whose layers start at the segment (:class:`SegmentCache`), the positions relative to
it, and the attention weights over the segment's keys; what the press writes back is appended
to the head's untouched entries. A press therefore treats the segment as the whole sequence
(its sinks, windows and ``n_kept`` are counted in the segment; ExpectedAttention's future
positions start at the segment's length), while the segment's hidden states, keys and values
were computed attending to the head.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from bench.compressors.kvpress.compat import Hook

KeptObserver = Callable[[int, torch.Tensor, torch.Tensor], None]
"""Called as ``observer(layer_idx, segment_keys, kept_keys)`` when a press writes a layer."""


class SegmentLayer:
    """One cache layer from position ``start`` on; writes keep positions before ``start``."""

    def __init__(self, layer: Any, layer_idx: int, start: int,
                 observer: KeptObserver | None) -> None:
        self._layer = layer
        self._layer_idx = layer_idx
        self._start = start
        self._observer = observer

    @property
    def keys(self) -> torch.Tensor:
        keys: torch.Tensor = self._layer.keys[:, :, self._start:]
        return keys

    @keys.setter
    def keys(self, kept: torch.Tensor) -> None:
        if self._observer is not None:
            self._observer(self._layer_idx, self.keys, kept)
        self._layer.keys = self._joined(self._layer.keys, kept)

    @property
    def values(self) -> torch.Tensor:
        values: torch.Tensor = self._layer.values[:, :, self._start:]
        return values

    @values.setter
    def values(self, kept: torch.Tensor) -> None:
        self._layer.values = self._joined(self._layer.values, kept)

    def _joined(self, states: torch.Tensor, kept: torch.Tensor) -> torch.Tensor:
        if self._start == 0:
            return kept
        return torch.cat([states[:, :, :self._start], kept], dim=2)


class SegmentCache:
    """A cache seen from position ``start`` on, as kvpress's hooks read and write it."""

    def __init__(self, cache: Any, start: int, observer: KeptObserver | None = None) -> None:
        self._cache = cache
        self._start = start
        self.layers = [SegmentLayer(layer, index, start, observer)
                       for index, layer in enumerate(cache.layers)]

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return int(self._cache.get_seq_length(layer_idx)) - self._start


def head_kept(start: int, observer: KeptObserver | None = None) -> Callable[[Hook], Hook]:
    """Wraps a press's hook so that it sees the cache from position ``start`` on."""

    def wrap(hook: Hook) -> Hook:
        def segment_hook(module: torch.nn.Module, args: Any, kwargs: dict[str, Any],
                         output: Any) -> Any:
            seen = dict(kwargs)
            seen["past_key_values"] = SegmentCache(kwargs["past_key_values"], start, observer)
            seen["cache_position"] = kwargs["cache_position"] - start
            hook(module, args, seen, _segment_attention(output, start))
            return output

        return segment_hook

    return wrap


def _segment_attention(output: Any, start: int) -> Any:
    """The attention module's output with its weights (if any) over the segment's keys."""
    weights = output[1]
    if weights is None or start == 0:
        return output
    return (output[0], weights[..., start:], *output[2:])
