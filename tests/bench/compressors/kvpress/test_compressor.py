"""``compressor=kvpress`` options, declared capabilities, per-sample records and answers."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest

from bench.compressors._api import CompressionRequest, Family, capabilities_of
from bench.compressors.kvpress import compat
from bench.compressors.kvpress.layout import prompt_segments
from bench.generation import DecoderPrompt, GenerationSettings
from bench.substrate.errors import InputError
from tests.bench.compressors.kvpress.conftest import load_stories

Make = Callable[[Mapping[str, Any]], Any]
PREFIX = "Please finish the extractive question answering task. Just output the answer. Context: "
CONTEXT = ("Tom had a small dog named Max. Max liked to run in the park and dig holes. One day "
           "Max found an old bone under a big tree. Tom laughed and gave Max a hug.")
SUFFIX = " Question: What did Max find? Answer:"


def _request(question_aware: bool = False) -> CompressionRequest:
    return CompressionRequest(CONTEXT, "What did Max find?", prefix=PREFIX,
                              suffix=SUFFIX if question_aware else None)


def _prompt() -> DecoderPrompt:
    return DecoderPrompt(kind="qa", prefix=PREFIX, suffix=SUFFIX, question="What did Max find?")


@pytest.mark.parametrize("name", ["SnapKVPress", "snapkv", "snap_kv", "SNAPKV"])
def test_a_press_is_named_by_its_class_or_short_name(make_compressor: Make, name: str) -> None:
    assert make_compressor({"press": name, "rate": 0.5}).settings()["press"] == "SnapKVPress"


@pytest.mark.parametrize(("name", "cls"), [("expected_attention", "ExpectedAttentionPress"),
                                           ("streaming_llm", "StreamingLLMPress"),
                                           ("observed_attention", "ObservedAttentionPress")])
def test_snake_case_names(make_compressor: Callable[..., Any], name: str, cls: str) -> None:
    attention = "eager" if cls == "ObservedAttentionPress" else "sdpa"
    compressor = make_compressor({"press": name, "rate": 0.5}, attention)
    assert compressor.settings()["press"] == cls


def test_an_unknown_press_lists_the_offered_ones(make_compressor: Make) -> None:
    with pytest.raises(InputError, match=r"unknown press 'snapkw'.*SnapKVPress"):
        make_compressor({"press": "snapkw", "rate": 0.5})


def test_press_options_are_typed_and_recorded_with_the_defaults(make_compressor: Make) -> None:
    settings = make_compressor({"press": "snapkv", "rate": 0.75, "window_size": "8"}).settings()
    assert settings["press_options"] == {"window_size": 8, "kernel_size": 5}
    assert settings["rate"] == 0.75 and settings["compression_ratio"] == 0.25


def test_an_unknown_press_option_names_the_press_options(make_compressor: Make) -> None:
    with pytest.raises(InputError, match=r"SnapKVPress has no option windows.*window_size"):
        make_compressor({"press": "snapkv", "rate": 0.5, "windows": 8})


@pytest.mark.parametrize(("rate", "ratio"), [(0.9, 0.1), (0.7, 0.3), (1.0, 0.0), (0.25, 0.75)])
def test_rate_is_the_kept_fraction_and_kvpress_gets_the_removed_one(
        make_compressor: Make, rate: float, ratio: float) -> None:
    compressor = make_compressor({"press": "knorm", "rate": rate})
    assert compressor.press.compression_ratio == ratio


@pytest.mark.parametrize(("options", "message"), [
    ({"rate": 0.5}, "needs press=NAME"),
    ({"press": "knorm"}, "needs rate=R"),
    ({"press": "knorm", "rate": 0.0}, r"must be in \(0, 1\]"),
    ({"press": "knorm", "rate": 1.5}, r"must be in \(0, 1\]"),
    ({"press": None, "rate": 0.5}, "press=none takes no rate"),
    ({"press": None, "window_size": 8}, "press=none takes no rate"),
])
def test_bad_options_are_one_line(make_compressor: Make, options: dict[str, Any],
                                  message: str) -> None:
    with pytest.raises(InputError, match=message) as raised:
        make_compressor(options)
    assert "\n" not in str(raised.value)


def test_settings_record_the_library_and_the_adapter(make_compressor: Make,
                                                     kvpress_version: str) -> None:
    settings = make_compressor({"press": "tova", "rate": 0.5}).settings()
    assert settings["kvpress_version"] == kvpress_version
    assert settings["kvpress_adapter"] == f"{compat.ADAPTER}/{compat.ADAPTER_VERSION}"
    assert settings["query_aware"] is False


def test_declared_capabilities() -> None:
    capabilities = capabilities_of("kvpress")
    assert capabilities.family is Family.KV_EVICTION
    assert capabilities.budget_options == ("rate",)
    assert capabilities.reads_prompt and not capabilities.cacheable
    assert capabilities.uses_question({"query_aware": True})
    assert not capabilities.uses_question({"query_aware": False})


def test_presses_that_read_attention_weights_run_eager(kvpress_version: str) -> None:
    from bench.compressors._api import build_compressor

    target = load_stories("sdpa")
    compressor = build_compressor("kvpress", target, {"press": "observed_attention",
                                                      "rate": 0.5})
    assert compressor.settings()["attn_implementation"] == "eager"


def test_each_sample_records_requested_and_achieved_rate(make_compressor: Make) -> None:
    compressor = make_compressor({"press": "streaming_llm", "rate": 0.6})
    [compressed] = compressor.compress([_request()])
    parts = prompt_segments(compressor.target.tokenizer, PREFIX, CONTEXT, "", False)
    n = len(parts.pressed)
    kept = int(n * 0.6)
    assert compressed.stats.requested_rate == compressed.extra["requested_rate"] == 0.6
    assert compressed.stats.original_tokens == n
    assert compressed.stats.compressed_tokens == kept
    assert compressed.extra["achieved_rate"] == compressed.stats.achieved_rate == kept / n
    assert compressed.extra["head_tokens"] == len(parts.head)
    assert compressed.position_offset == len(parts.head) + n
    for keys in compressed.keys:
        assert keys.shape[-2] == len(parts.head) + kept


def test_the_question_is_read_after_the_pressed_context(make_compressor: Make) -> None:
    compressor = make_compressor({"press": "knorm", "rate": 0.5})
    [compressed] = compressor.compress([_request()])
    whole = prompt_segments(compressor.target.tokenizer, PREFIX, CONTEXT, SUFFIX, False)
    item = compressor.decoder_item(compressed, _prompt())
    assert item.prompt_ids == whole.tail
    assert item.position_offset == len(whole.head) + len(whole.pressed)


def test_query_aware_presses_the_question_too(make_compressor: Make) -> None:
    compressor = make_compressor({"press": "knorm", "rate": 0.5, "query_aware": True})
    [compressed] = compressor.compress([_request(question_aware=True)])
    whole = prompt_segments(compressor.target.tokenizer, PREFIX, CONTEXT, SUFFIX, True)
    assert compressed.stats.original_tokens == len(whole.pressed)
    item = compressor.decoder_item(compressed, _prompt())
    assert item.prompt_ids == whole.tail and len(item.prompt_ids) == 1


def test_a_cache_is_not_read_under_another_prefix(make_compressor: Make) -> None:
    compressor = make_compressor({"press": "knorm", "rate": 0.5})
    [compressed] = compressor.compress([_request()])
    other = DecoderPrompt(kind="qa", prefix="Context: ", suffix=SUFFIX)
    with pytest.raises(ValueError, match="differs"):
        compressor.decoder_item(compressed, other)


def test_no_press_answers_as_greedy_generation_on_the_whole_prompt(make_compressor: Make) -> None:
    """The ``hf`` backend's path for ``compressor=none``: the whole prompt tokenized at once,
    ``generate`` greedily, the text cut at the stop string."""
    import torch

    compressor = make_compressor({"press": None})
    settings = GenerationSettings(max_new_tokens=24, until=("\n",))
    [compressed] = compressor.compress([_request()])
    [answer] = compressor.generate([(compressed, _prompt())], settings)
    tokenizer, model = compressor.target.tokenizer, compressor.model
    prompt = tokenizer(PREFIX + CONTEXT + SUFFIX, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        whole = model.generate(input_ids=prompt, max_new_tokens=24, do_sample=False)
    text = tokenizer.decode(whole[0, prompt.shape[1]:], skip_special_tokens=True)
    assert answer.text == settings.cut_at_stop(text)
    pressed = make_compressor({"press": "knorm", "rate": 0.25})
    [small] = pressed.compress([_request()])
    assert pressed.generate([(small, _prompt())], settings)[0].text != answer.text
