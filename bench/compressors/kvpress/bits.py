"""``compressed_bits`` of a pressed cache: the kept entries plus which entries they are.

For every layer ``l`` keeping ``k_l`` of the ``n`` pressed positions in each of its ``H`` KV
heads (head dimension ``d``, ``b`` bits per value):

* kept entries: ``2 x H x d x k_l x b`` (keys and values);
* which entries: each KV head of each layer keeps its own subset, named by its index among the
  ``C(n, k_l)`` subsets in ``ceil(log2 C(n, k_l))`` bits: ``H x ceil(log2 C(n, k_l))``.

The head (the prompt before the context, kept whole) is part of the prompt, not of the
compression, and is not counted.
"""

from __future__ import annotations

import math

from bench.compressors.kvpress.prefill import PressedCache


def subset_index_bits(n: int, k: int) -> int:
    """Bits to name one of the ``C(n, k)`` subsets of ``k`` positions: ``ceil(log2 C(n, k))``."""
    if not 0 <= k <= n:
        raise ValueError(f"a subset of {k} of {n} positions is not possible")
    return (math.comb(n, k) - 1).bit_length()


def kept_entry_bits(cache: PressedCache) -> int:
    """Bits of the pressed segment's kept keys and values at their dtype's width."""
    total = 0
    for keys, values in zip(cache.keys, cache.values, strict=True):
        for states in (keys, values):
            heads, length, dim = states.shape
            kept = length - cache.head_tokens
            total += heads * kept * dim * states.element_size() * 8
    return total


def which_kept_bits(cache: PressedCache) -> int:
    """Bits naming, per layer and KV head, which pressed positions were kept."""
    return sum(int(keys.shape[0]) * subset_index_bits(cache.pressed_tokens, kept)
               for keys, kept in zip(cache.keys, cache.kept_per_layer, strict=True))


def pressed_bits(cache: PressedCache) -> int:
    """``compressed_bits`` of the pressed segment (see the module)."""
    return kept_entry_bits(cache) + which_kept_bits(cache)
