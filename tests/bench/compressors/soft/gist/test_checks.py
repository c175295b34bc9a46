"""``gist``: refusals of models that are not gist models, options, and the prompt layout."""

from __future__ import annotations

from typing import Any

import pytest

from bench.compressors._api import CompressionRequest, TargetModel, build_compressor
from bench.compressors.soft.gist.checks import GistModelError
from bench.generation import DecoderPrompt
from bench.records import CompressedKV
from tests.bench.compressors.soft.gist.test_parity_gist import load_gist_target
from tests.bench.compressors.soft.reference_fixtures import (
    ReferenceFixture,
    load_fixture,
    require_stories_dir,
)


@pytest.fixture()
def fixture() -> ReferenceFixture:
    return load_fixture("gist")


@pytest.fixture()
def gist_target(fixture: ReferenceFixture) -> TargetModel:
    """A fresh copy of the gist checkpoint (tests may change its config)."""
    return load_gist_target(fixture)


def _base_model() -> Any:
    from transformers import AutoModelForCausalLM

    path = require_stories_dir()
    return AutoModelForCausalLM.from_pretrained(str(path)).eval()  # type: ignore[no-untyped-call]


def test_tokenizer_without_gist_token_is_refused() -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(require_stories_dir()))
    target = TargetModel("stories", tokenizer, _base_model())
    with pytest.raises(GistModelError, match="no added token '<GIST>'"):
        build_compressor("gist", target, {})


def test_model_without_a_gist_embedding_row_is_refused(gist_target: TargetModel) -> None:
    target = TargetModel("stories", gist_target.tokenizer, _base_model())
    with pytest.raises(GistModelError, match="embedding rows but the gist token id is 512"):
        build_compressor("gist", target, {})


def test_non_llama_config_is_refused(gist_target: TargetModel) -> None:
    assert gist_target.model is not None
    gist_target.model.config.model_type = "qwen2"  # type: ignore[misc]
    with pytest.raises(GistModelError, match="model_type 'qwen2'"):
        build_compressor("gist", gist_target, {})


def test_gist_count_must_match_a_recorded_one(gist_target: TargetModel) -> None:
    assert gist_target.model is not None
    gist_target.model.config.num_gist_tokens = 2
    with pytest.raises(GistModelError, match="trained with num_gist_tokens=2"):
        build_compressor("gist", gist_target, {})
    assert build_compressor("gist", gist_target, {"num_gist_tokens": 2}).settings()[
        "num_gist_tokens"] == 2
    with pytest.raises(GistModelError, match="num_gist_tokens must be >= 1"):
        build_compressor("gist", gist_target, {"num_gist_tokens": 0})


def test_whitespace_touching_the_gist_token_is_dropped(gist_target: TargetModel) -> None:
    compressor: Any = build_compressor("gist", gist_target, {})
    tokens = compressor.tokens
    pieces = [tokens.tokenizer(text, add_special_tokens=False)["input_ids"]
              for text in ("one two", "three")]
    expected = [*pieces[0], tokens.gist_id, tokens.gist_id, *pieces[1]]
    assert tokens.encode_pieces("one two \n<GIST>\n <GIST>\n\nthree") == expected


def test_two_gist_tokens(gist_target: TargetModel, fixture: ReferenceFixture) -> None:
    """With k=2 the call gains a gist token; the first gist's states are the k=1 ones."""
    import torch

    case = fixture.cases[0]
    one: Any = build_compressor("gist", gist_target, {})
    two: Any = build_compressor("gist", gist_target, {"num_gist_tokens": 2})
    ids = two.tokens.instruction_ids(case["context"], 2)
    assert ids == [*case["instruction_input_ids"], case["gist_token_id"]]
    [compressed] = two.compress([CompressionRequest(case["context"])])
    assert isinstance(compressed, CompressedKV)
    assert compressed.position_offset == len(ids) == case["next_position"] + 1
    assert compressed.stats.compressed_tokens == 2
    for layer, key in enumerate(compressed.keys):
        assert key.shape[-2] == 2
        torch.testing.assert_close(key[None, :, :1],
                                   fixture.tensors[f"{case['id']}.layer{layer}.key"],
                                   atol=fixture.tensor_atol, rtol=fixture.tensor_rtol)
    prompt = DecoderPrompt(kind="regeneration", prefix="", suffix="")
    with pytest.raises(ValueError, match="holds 2 gist states but num_gist_tokens is 1"):
        one.decoder_item(compressed, prompt)


def test_prompt_kinds(gist_target: TargetModel, fixture: ReferenceFixture) -> None:
    compressor: Any = build_compressor("gist", gist_target, {})
    with_question = next(case for case in fixture.cases if case["question"])
    without = next(case for case in fixture.cases if case["question"] is None)
    [compressed] = compressor.compress([CompressionRequest(with_question["context"])])
    regeneration = DecoderPrompt(kind="regeneration", prefix="", suffix="",
                                 question=with_question["question"])
    assert list(compressor.decoder_item(compressed, regeneration).prompt_ids) == \
        without["input_ids"]
    no_question = DecoderPrompt(kind="qa", prefix="", suffix="", question=None)
    assert list(compressor.decoder_item(compressed, no_question).prompt_ids) == \
        without["input_ids"]
    with pytest.raises(ValueError, match="unknown prompt kind 'summary'"):
        compressor.decoder_item(compressed, DecoderPrompt(kind="summary", prefix="", suffix=""))
