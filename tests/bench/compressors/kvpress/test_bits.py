"""``compressed_bits`` of a pressed cache on hand-computed cases."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from bench.compressors._api import CompressionRequest
from bench.compressors.kvpress.bits import pressed_bits, subset_index_bits
from bench.compressors.kvpress.prefill import PressedCache


def _cache(kept: tuple[int, ...], head: int, pressed: int, dtype: Any) -> PressedCache:
    import torch

    keys = tuple(torch.zeros(2, head + k, 4, dtype=dtype) for k in kept)
    return PressedCache(keys, keys, head_tokens=head, pressed_tokens=pressed)


@pytest.mark.parametrize(("n", "k", "bits"), [(5, 3, 4), (4, 2, 3), (2, 1, 1), (8, 8, 0),
                                              (1, 1, 0), (16, 8, 14)])
def test_subset_index_bits(n: int, k: int, bits: int) -> None:
    """ceil(log2 C(n, k)): C(5,3)=10 -> 4, C(4,2)=6 -> 3, C(16,8)=12870 -> 14."""
    assert subset_index_bits(n, k) == bits


def test_kept_entries_plus_which_ones_per_layer_and_head() -> None:
    """2 layers keeping 3 of 5 pressed positions, 2 KV heads, head_dim 4, fp32, 2 head tokens
    (not counted): entries 2 x (2 x 2 x 4 x 3 x 32) = 3072, which 2 x 2 x ceil(log2 10) = 16."""
    import torch

    assert pressed_bits(_cache((3, 3), 2, 5, torch.float32)) == 3088


def test_layers_may_keep_different_counts_and_dtypes_count() -> None:
    """bf16: layer 0 keeps 3 of 5 (2 x 2 x 4 x 3 x 16 = 768 and 2 x ceil(log2 10) = 8),
    layer 1 all 5 (2 x 2 x 4 x 5 x 16 = 1280; C(5, 5) = 1 subset: 0 bits)."""
    import torch

    assert pressed_bits(_cache((3, 5), 0, 5, torch.bfloat16)) == 768 + 8 + 1280 + 0


def test_a_compression_records_its_bits(
        make_compressor: Callable[[Mapping[str, Any]], Any]) -> None:
    compressor = make_compressor({"press": "knorm", "rate": 0.5})
    [compressed] = compressor.compress([CompressionRequest(
        "Lily had a red ball. She liked to throw it high in the sky.",
        prefix="Context: ", suffix=" Question: What did Lily have? Answer:")])
    config = compressor.model.config
    n = compressed.stats.original_tokens
    k = n // 2
    heads = config.num_key_value_heads
    head_dim = config.hidden_size // config.num_attention_heads
    entries = config.num_hidden_layers * 2 * heads * head_dim * k * 32
    which = config.num_hidden_layers * heads * math.ceil(math.log2(math.comb(n, k)))
    assert compressed.stats.compressed_tokens == k
    assert compressed.stats.compressed_bits == entries + which
