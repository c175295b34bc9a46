"""ICAE v2 layout rules beyond the recorded cases: the segment rule at every length, and the
published hyper-parameters (read from the fixture README) as option defaults."""

from __future__ import annotations

import itertools
import re

import pytest

from bench.compressors.soft.icae_v2.compressor import UNTRAINED_NUM_MEM, IcaeV2Options
from bench.compressors.soft.icae_v2.layout import num_slots, segment_bounds
from bench.compressors.soft.icae_v2.model import IcaeV2Lora
from tests.bench.compressors.soft.reference_fixtures import load_fixture

METHOD = "icae_v2"


def published(readme: str, pattern: str) -> int:
    found = re.search(pattern, readme)
    assert found, f"the fixture README no longer states {pattern!r}"
    return int(found.group(1))


def test_defaults_are_the_published_hyper_parameters() -> None:
    readme = (load_fixture(METHOD).path / "README.md").read_text("utf-8")
    options = IcaeV2Options()
    assert options.mean_compression_rate == published(
        readme, r"`--mean_compression_rate` \(reference (\d+)\)")
    assert options.max_context_tokens == published(readme, r"`--model_max_length (\d+)`")
    assert options.lora_alpha == published(readme, r"LoRA alpha (\d+)")
    assert IcaeV2Lora().alpha == options.lora_alpha
    assert IcaeV2Lora().r == published(readme, r"`--lora_r (\d+)`")
    fixed_mem_size = published(readme, r"`--fixed_mem_size k` \(reference (\d+)\)")
    assert fixed_mem_size == UNTRAINED_NUM_MEM


def test_segment_rule_at_every_length() -> None:
    """Fewest segments of at most k*rate ids, all of one length except a shorter last one."""
    cases = load_fixture(METHOD).cases
    for k, rate in sorted({(c["num_mem"], c["mean_compression_rate"]) for c in cases}):
        budget = k * rate
        for length in range(1, 4 * budget + 2):
            bounds = segment_bounds(length, k, rate)
            count = len(bounds)
            assert (count - 1) * budget < length <= count * budget, (k, rate, length)
            assert bounds[0][0] == 0 and bounds[-1][1] == length
            assert all(a[1] == b[0] for a, b in itertools.pairwise(bounds))
            sizes = [end - start for start, end in bounds]
            assert len(set(sizes[:-1])) <= 1 and sizes[-1] <= sizes[0]
            assert sizes[0] == -(-length // count)
            assert num_slots(length, k, rate) == count * k


def test_empty_context_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one encoder token"):
        segment_bounds(0, 4, 4)
