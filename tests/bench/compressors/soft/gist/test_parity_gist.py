"""Parity of ``gist`` with jayelm/gisting (LLaMA path) on the reference fixtures.

The fixture's ``checkpoint/`` is loaded as a plain transformers causal LM. Per case: the
tokenizer path gives the recorded ids, the gist key/value states, ``gist_start`` and
``next_position`` match, the prompt logits match, and greedy decoding through the public
compressor path gives the recorded token ids.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from bench.compressors._api import CompressionRequest, TargetModel, build_compressor
from bench.generation import DecoderPrompt, GenerationSettings
from bench.records import CompressedKV
from tests.bench.compressors.soft.reference_fixtures import (
    ReferenceFixture,
    case_ids,
    load_fixture,
)

METHOD = "gist"
CASES = case_ids(METHOD)


def load_gist_target(fixture: ReferenceFixture) -> TargetModel:
    """The fixture checkpoint as the harness loads it (AutoModelForCausalLM/AutoTokenizer)."""
    for module in ("sentencepiece", "google.protobuf"):
        pytest.importorskip(module, reason=f"{module} is needed to read the checkpoint's "
                                           "tokenizer.model with transformers")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = fixture.path / "checkpoint"
    model = AutoModelForCausalLM.from_pretrained(str(path)).eval()  # type: ignore[no-untyped-call]
    return TargetModel(str(path), AutoTokenizer.from_pretrained(str(path)), model)


@pytest.fixture(scope="module")
def fixture() -> ReferenceFixture:
    return load_fixture(METHOD)


@pytest.fixture(scope="module")
def target(fixture: ReferenceFixture) -> TargetModel:
    return load_gist_target(fixture)


@pytest.fixture(scope="module")
def compressor(target: TargetModel, fixture: ReferenceFixture) -> Any:
    num_gist = {case["num_gist_tokens"] for case in fixture.cases}
    assert len(num_gist) == 1, "the fixture mixes gist counts"
    return build_compressor(METHOD, target, {"num_gist_tokens": num_gist.pop()})


@pytest.fixture(scope="module")
def compressed(compressor: Any, fixture: ReferenceFixture) -> dict[str, CompressedKV]:
    requests = [CompressionRequest(case["context"], case["question"]) for case in fixture.cases]
    results = compressor.compress(requests)
    assert all(isinstance(result, CompressedKV) for result in results)
    return {case["id"]: result for case, result in zip(fixture.cases, results, strict=True)}


def decoder_prompt(case: dict[str, Any]) -> DecoderPrompt:
    """Cases without a question use the no-input template, as regeneration prompts do."""
    if case["question"] is None:
        return DecoderPrompt(kind="regeneration", prefix="", suffix="")
    return DecoderPrompt(kind="qa", prefix="", suffix="", question=case["question"])


def layer_count(fixture: ReferenceFixture, case_id: str) -> int:
    return sum(1 for name in fixture.tensors
               if name.startswith(f"{case_id}.layer") and name.endswith(".key"))


@pytest.mark.parametrize("case_id", CASES)
def test_tokenizer_path_gives_recorded_ids(compressor: Any, compressed: dict[str, CompressedKV],
                                           fixture: ReferenceFixture, case_id: str) -> None:
    case = fixture.case(case_id)
    tokens = compressor.tokens
    assert tokens.gist_id == case["gist_token_id"]
    assert tokens.instruction_ids(case["context"], case["num_gist_tokens"]) == \
        case["instruction_input_ids"]
    assert tokens.input_ids(case["question"]) == case["input_ids"]
    assert tokens.encode(case["full_prompt_text"]) == case["full_input_ids"]
    item = compressor.decoder_item(compressed[case_id], decoder_prompt(case))
    assert list(item.prompt_ids) == case["input_ids"]


@pytest.mark.parametrize("case_id", CASES)
def test_gist_states_and_positions(compressed: dict[str, CompressedKV],
                                   fixture: ReferenceFixture, case_id: str) -> None:
    import torch

    case = fixture.case(case_id)
    tensors = fixture.tensors
    result = compressed[case_id]
    assert len(result.keys) == len(result.values) == layer_count(fixture, case_id)
    for layer, (key, value) in enumerate(zip(result.keys, result.values, strict=True)):
        for name, ours in (("key", key), ("value", value)):
            expected = tensors[f"{case_id}.layer{layer}.{name}"]
            assert ours[None].shape == expected.shape, (layer, name)
            torch.testing.assert_close(ours[None], expected, atol=fixture.tensor_atol,
                                       rtol=fixture.tensor_rtol, msg=f"layer {layer} {name}")
    gist_start = int(tensors[f"{case_id}.gist_start"].item())
    next_position = int(tensors[f"{case_id}.next_position"].item())
    assert result.extra["gist_start"] == gist_start == case["gist_start"]
    assert result.position_offset == next_position == case["next_position"]
    assert result.stats.compressed_tokens == case["num_gist_tokens"]


def _prompt_logits(model: Any, item: Any) -> Any:
    import torch

    from bench.compressors.soft._cache import kv_cache
    from bench.compressors.soft.decode import prepare_batch

    batch = prepare_batch(model, [item])
    with torch.no_grad():
        out = model(inputs_embeds=batch.inputs_embeds, attention_mask=batch.attention_mask,
                    position_ids=batch.position_ids,
                    past_key_values=kv_cache(batch.keys, batch.values), use_cache=True)
    return out.logits


@pytest.mark.parametrize("case_id", CASES)
def test_prompt_logits(compressor: Any, compressed: dict[str, CompressedKV],
                       fixture: ReferenceFixture, case_id: str) -> None:
    import torch

    case = fixture.case(case_id)
    item = compressor.decoder_item(compressed[case_id], decoder_prompt(case))
    expected = fixture.tensors[f"{case_id}.prompt_logits"]
    logits = _prompt_logits(compressor.model, item)
    assert logits.shape == expected.shape
    torch.testing.assert_close(logits, expected, atol=fixture.tensor_atol,
                               rtol=fixture.tensor_rtol)


@pytest.mark.parametrize("case_id", CASES)
def test_prompt_logits_from_recorded_ids_and_states(compressor: Any, fixture: ReferenceFixture,
                                                    case_id: str) -> None:
    """The decoding layout alone: recorded ids and gist states, positions from next_position."""
    import torch

    from bench.compressors.soft.decode import DecoderItem

    case = fixture.case(case_id)
    tensors = fixture.tensors
    layers = range(layer_count(fixture, case_id))
    item = DecoderItem(
        prompt_ids=tuple(case["input_ids"]),
        keys=tuple(tensors[f"{case_id}.layer{n}.key"][0] for n in layers),
        values=tuple(tensors[f"{case_id}.layer{n}.value"][0] for n in layers),
        position_offset=int(tensors[f"{case_id}.next_position"].item()),
    )
    torch.testing.assert_close(_prompt_logits(compressor.model, item),
                               tensors[f"{case_id}.prompt_logits"],
                               atol=fixture.tensor_atol, rtol=fixture.tensor_rtol)


@pytest.fixture()
def chosen_tokens(compressor: Any) -> Iterator[list[int]]:
    """Every token the model's head picks greedily (the last position of each forward)."""
    chosen: list[int] = []

    def record(module: Any, inputs: Any, output: Any) -> None:
        chosen.append(int(output[0, -1].argmax()))

    handle = compressor.model.get_output_embeddings().register_forward_hook(record)
    yield chosen
    handle.remove()


@pytest.mark.parametrize("case_id", CASES)
def test_greedy_tokens(compressor: Any, compressed: dict[str, CompressedKV],
                       fixture: ReferenceFixture, chosen_tokens: list[int],
                       case_id: str) -> None:
    case = fixture.case(case_id)
    expected = case["expected_token_ids"]
    settings = GenerationSettings(max_new_tokens=len(expected))
    [output] = compressor.generate([(compressed[case_id], decoder_prompt(case))], settings)
    assert chosen_tokens == expected
    eos = compressor.target.tokenizer.eos_token_id
    kept = [token for token in expected if token != eos]
    assert output.generated_tokens == len(kept)
    assert output.text == compressor.target.tokenizer.decode(kept, skip_special_tokens=True)
