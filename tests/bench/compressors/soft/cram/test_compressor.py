"""Per-sample cramming on the real pretrained tiny Llama."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from bench.compressors import CompressionRequest, build_compressor
from bench.compressors._api import TargetModel
from bench.generation import DecoderPrompt, GenerationSettings
from bench.lmeval.cli_errors import user_facing
from bench.records import CompressedEmbeddings
from bench.substrate.errors import one_line

SENTENCE = "Lily saw a big red ball in the park. She wanted to play with it, so she ran fast."
OTHER = "Tom and his dog went to the lake. They saw a fish jump out of the water."


def test_cram_reaches_full_accuracy_and_regenerates_the_text(
        load_target: Callable[[str], TargetModel]) -> None:
    target = load_target("stories")
    n_tokens = target.count_tokens(SENTENCE)
    assert 28 <= n_tokens <= 40
    cram = build_compressor("cram", target, {"num_mem": 4, "steps": 1500})
    (record,) = cram.compress([CompressionRequest(SENTENCE)])
    assert isinstance(record, CompressedEmbeddings)
    assert record.extra["teacher_forced_accuracy"] == 1.0 and record.extra["converged"]
    assert 0 < record.extra["steps"] <= 1500
    assert record.stats.compressed_tokens == 4 and record.stats.original_tokens == n_tokens
    settings = GenerationSettings(max_new_tokens=n_tokens)
    (output,) = cram.generate([(record, DecoderPrompt("regeneration", "", ""))],  # type: ignore[attr-defined]
                              settings)
    assert output.text.strip() == SENTENCE


def test_cram_batch_equals_single(load_target: Callable[[str], TargetModel]) -> None:
    target = load_target("stories")
    cram = build_compressor("cram", target, {"num_mem": 2, "steps": 30, "batch_size": 2})
    batched = cram.compress([CompressionRequest(SENTENCE), CompressionRequest(OTHER)])
    single = cram.compress([CompressionRequest(OTHER)])
    assert isinstance(batched[1], CompressedEmbeddings)
    assert isinstance(single[0], CompressedEmbeddings)
    assert batched[1].extra["steps"] == single[0].extra["steps"]
    assert abs(batched[1].extra["teacher_forced_accuracy"]
               - single[0].extra["teacher_forced_accuracy"]) < 1e-6
    settings = GenerationSettings(max_new_tokens=10)
    prompt = DecoderPrompt("qa", "", " Who went to the lake?")
    assert ([o.text for o in cram.generate([(batched[1], prompt)], settings)]  # type: ignore[attr-defined]
            == [o.text for o in cram.generate([(single[0], prompt)], settings)])  # type: ignore[attr-defined]


@pytest.mark.parametrize(("key", "value"), [("lr", "nan"), ("lr", "inf"), ("lr", "0"),
                                            ("lr", "-0.01"), ("beta1", "1"), ("beta2", "-0.1"),
                                            ("weight_decay", "-1")])
def test_an_optimiser_option_out_of_range_is_one_line(
        load_target: Callable[[str], TargetModel], key: str, value: str) -> None:
    with pytest.raises(ValueError) as caught:
        build_compressor("cram", load_target("llama"), {key: value})
    assert user_facing(caught.value) is caught.value
    line = one_line(caught.value)
    assert "cram" in line and f"option {key}=" in line
