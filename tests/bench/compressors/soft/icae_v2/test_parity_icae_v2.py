"""Parity of ICAE v2 (``icae`` variant ``v2``) with getao/icae ``code/icae_v2`` on the fixtures.

The fixture's ``base/`` is the target model and its ``checkpoint/`` files are the released
format. Per case: the tokenizer path gives the recorded encoder ids, segments and decoder ids;
slots and positions match ``compressed.safetensors``; greedy decoding through the public
compressor gives ``expected_token_ids``; the training losses match ``losses.json``.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from bench.compressors._api import CompressionRequest, TargetModel
from bench.compressors.soft.icae_v2.compressor import IcaeV2, IcaeV2Options, make_icae_v2
from bench.compressors.soft.icae_v2.layout import (
    IGNORE_INDEX,
    LossExample,
    finetuning_example_from_text,
    pretraining_example_from_text,
    segment_memory_positions,
)
from bench.generation import DecoderPrompt, GenerationSettings
from bench.records import CompressedEmbeddings
from tests.bench.compressors.soft.reference_fixtures import (
    ReferenceFixture,
    case_ids,
    load_fixture,
)

METHOD = "icae_v2"
CASES = case_ids(METHOD)
KINDS = sorted({kind for kind in ("regeneration", "qa") if case_ids(METHOD, kind)})

CompressorFor = Callable[[dict[str, Any]], IcaeV2]


def load_base(fixture: ReferenceFixture, folder: str) -> TargetModel:
    """The fixture's base model as the harness loads it."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = fixture.path / folder
    model = AutoModelForCausalLM.from_pretrained(str(path)).eval()  # type: ignore[no-untyped-call]
    return TargetModel(str(path), AutoTokenizer.from_pretrained(str(path)), model)


def case_options(fixture: ReferenceFixture, case: dict[str, Any]) -> dict[str, Any]:
    """Compressor options of a case: its checkpoint and rate; QA cases use the FT prompt."""
    mode = "finetuned" if case["kind"] == "qa" else "pretrained"
    return {"checkpoint": str(fixture.path / case["checkpoint"]),
            "mean_compression_rate": case["mean_compression_rate"], "mode": mode}


def decoder_prompt(case: dict[str, Any]) -> DecoderPrompt:
    return DecoderPrompt(kind=case["kind"], prefix="", suffix="", question=case.get("question"))


@pytest.fixture(scope="module")
def fixture() -> ReferenceFixture:
    return load_fixture(METHOD)


@pytest.fixture(scope="module")
def compressor_for(fixture: ReferenceFixture) -> CompressorFor:
    return compressors_of(fixture)


def compressors_of(fixture: ReferenceFixture) -> CompressorFor:
    """One compressor (own base-model copy) per :func:`compressor_key`, built on first use."""
    built: dict[tuple[str, int, str], IcaeV2] = {}

    def get(case: dict[str, Any]) -> IcaeV2:
        key = compressor_key(case)
        if key not in built:
            target = load_base(fixture, case["base_model"])
            built[key] = make_icae_v2(target, case_options(fixture, case))
        return built[key]

    return get


def compressor_key(case: dict[str, Any]) -> tuple[str, int, str]:
    """What a case's compressor depends on: its checkpoint, rate and kind (the mode)."""
    return case["checkpoint"], case["mean_compression_rate"], case["kind"]


def compress(compressor: IcaeV2, case: dict[str, Any]) -> CompressedEmbeddings:
    request = CompressionRequest(case["context"], case.get("question"))
    result = compressor.compress([request])[0]
    assert isinstance(result, CompressedEmbeddings)
    return result


@pytest.mark.parametrize("case_id", CASES)
def test_ids_and_segments(fixture: ReferenceFixture, compressor_for: CompressorFor,
                          case_id: str) -> None:
    case = fixture.case(case_id)
    compressor = compressor_for(case)
    ids = compressor.model.ids
    assert compressor.model.num_mem == case["num_mem"]
    assert list(ids.memory) == case["mem_token_ids"]
    assert (ids.ae, ids.lm, ids.ft) == (case["ae_token_id"], case["lm_token_id"],
                                       case["ft_token_id"])
    assert compressor.encoder_ids(case["context"]) == case["context_tokens"]
    result = compress(compressor, case)
    assert result.extra["segment_lengths"] == case["segment_lengths"]
    assert len(result.extra["segment_lengths"]) == case["num_segments"]
    assert result.stats.compressed_tokens == case["num_segments"] * case["num_mem"]


@pytest.mark.parametrize("case_id", CASES)
def test_decoder_ids_and_positions(fixture: ReferenceFixture, compressor_for: CompressorFor,
                                   case_id: str) -> None:
    case = fixture.case(case_id)
    compressor = compressor_for(case)
    slots = case["num_segments"] * case["num_mem"]
    layout = compressor.decoder_layout(slots, decoder_prompt(case))
    assert list(layout.prefix) == case["decoder_prefix_ids"]
    assert list(layout.suffix) == case["decoder_suffix_ids"]
    tensors = fixture.tensors
    assert layout.memory_positions == tensors[f"{case_id}.decoder_memory_positions"].tolist()
    assert layout.memory_positions == case["decoder_memory_positions"]
    assert layout.start_position == tensors[f"{case_id}.decoder_start_position"].item()
    assert layout.start_position == case["decoder_start_position"]
    encoder = [segment_memory_positions(length, case["num_mem"])
               for length in case["segment_lengths"]]
    assert encoder == tensors[f"{case_id}.memory_positions"].tolist()
    assert encoder == case["memory_positions"]


@pytest.mark.parametrize("case_id", CASES)
def test_slots_match(fixture: ReferenceFixture, compressor_for: CompressorFor,
                     case_id: str) -> None:
    case = fixture.case(case_id)
    compressor = compressor_for(case)
    expected = fixture.tensors[f"{case_id}.slots"]
    from_text = compress(compressor, case).embeddings
    with torch.no_grad():
        from_ids = compressor.model.compress([case["context_tokens"]])[0]
    for slots in (from_text, from_ids):
        assert slots.shape == expected.shape
        torch.testing.assert_close(slots, expected, atol=fixture.tensor_atol,
                                   rtol=fixture.tensor_rtol)


@pytest.mark.parametrize("kind", KINDS)
def test_greedy_ids_match_in_one_batch(fixture: ReferenceFixture,
                                       compressor_for: CompressorFor, kind: str) -> None:
    check_greedy_batches(fixture, compressor_for, kind)


def check_greedy_batches(fixture: ReferenceFixture, compressor_for: CompressorFor,
                         kind: str) -> None:
    """The cases of ``kind``, one batch per checkpoint, rate and token limit, give the
    recorded greedy ids, stops and texts."""
    groups: dict[tuple[str, int, str, int], list[dict[str, Any]]] = {}
    for case in fixture.cases:
        if case["kind"] == kind:
            key = (*compressor_key(case), case["max_new_tokens"])
            groups.setdefault(key, []).append(case)
    for cases in groups.values():
        check_greedy_batch(compressor_for(cases[0]), cases)


def check_greedy_batch(compressor: IcaeV2, cases: list[dict[str, Any]]) -> None:
    settings = GenerationSettings(max_new_tokens=cases[0]["max_new_tokens"])
    requests = [CompressionRequest(case["context"], case.get("question")) for case in cases]
    compressed = compressor.compress(requests)
    items = [(c, decoder_prompt(case)) for c, case in zip(compressed, cases, strict=True)]
    results = compressor.generate_ids(items, settings)
    texts = compressor.generate(items, settings)
    for case, result, output in zip(cases, results, texts, strict=True):
        eos = [case["eos_token_id"]] if result.stopped_at_eos else []
        assert [*result.token_ids, *eos] == case["expected_token_ids"], case["id"]
        assert result.stopped_at_eos == case["stopped_at_eos"], case["id"]
        decoded = compressor.target.tokenizer.decode(list(result.token_ids),
                                                     skip_special_tokens=True)
        assert output.text == decoded
        assert output.generated_tokens == len(result.token_ids)


@pytest.mark.parametrize("case_id", CASES)
def test_losses_match(fixture: ReferenceFixture, compressor_for: CompressorFor,
                      case_id: str) -> None:
    recorded = fixture.losses["cases"][case_id]
    case = fixture.case(case_id)
    compressor = compressor_for({**case, "checkpoint": recorded["checkpoint"]})
    example = LossExample(tuple(recorded["input_ids"]), tuple(recorded["prompt_answer_ids"]),
                          tuple(recorded["labels"]))
    with torch.no_grad():
        loss = compressor.model.loss(example).item()
    assert loss == pytest.approx(recorded["loss"], abs=fixture.loss_atol)
    assert list(example.labels[1:]) == recorded["target_ids_used"]
    assert sum(t != IGNORE_INDEX for t in example.labels[1:]) == recorded["num_targets"]


@pytest.mark.parametrize("case_id", CASES)
def test_tokenizer_path_gives_loss_ids(fixture: ReferenceFixture,
                                       compressor_for: CompressorFor, case_id: str) -> None:
    recorded = fixture.losses["cases"][case_id]
    case = fixture.case(case_id)
    compressor = compressor_for(case)
    tokenizer = compressor.target.tokenizer
    rate = case["mean_compression_rate"]
    max_tokens = IcaeV2Options().max_context_tokens
    if case["kind"] == "qa":
        example = finetuning_example_from_text(tokenizer, compressor.model.ids, case["context"],
                                               case["question"], case["answer"], rate,
                                               max_tokens)
    else:
        example = pretraining_example_from_text(tokenizer, compressor.model.ids,
                                                case["context"], rate, max_tokens,
                                                random.Random(0))
    assert list(example.encoder_ids) == recorded["input_ids"]
    assert list(example.prompt_answer_ids) == recorded["prompt_answer_ids"]
    assert list(example.labels) == recorded["labels"]


def several_checkpoints(fixture: ReferenceFixture, root: Path) -> ReferenceFixture:
    """A copy of the fixture set (files linked) whose cases alternate between the original
    checkpoint folder and a second one holding the same files."""
    copy = root / METHOD
    copy.mkdir(parents=True)
    for item in fixture.path.iterdir():
        if item.name != "cases.jsonl":
            (copy / item.name).symlink_to(item, target_is_directory=item.is_dir())
    cases = []
    for index, case in enumerate(fixture.cases):
        folder, name = case["checkpoint"].rsplit("/", 1)
        second = Path(f"{folder}_second")
        if not (copy / second).exists():
            (copy / second).symlink_to(fixture.path / folder, target_is_directory=True)
        cases.append({**case, "checkpoint": f"{second}/{name}"} if index % 2 else case)
    (copy / "cases.jsonl").write_text("".join(json.dumps(case) + "\n" for case in cases))
    return ReferenceFixture(copy)


@pytest.mark.parametrize("kind", KINDS)
def test_greedy_batches_hold_when_cases_use_several_checkpoints(
        tmp_path: Path, fixture: ReferenceFixture, kind: str) -> None:
    synthetic = several_checkpoints(fixture, tmp_path / "reference")
    checkpoints = {case["checkpoint"] for case in synthetic.cases if case["kind"] == kind}
    assert len(checkpoints) == 2
    check_greedy_batches(synthetic, compressors_of(synthetic), kind)
