"""Parity of ``pisco`` with naver/pisco (model.py, collator.py) on the reference fixtures.

Per case, through the public compressor: the compressor rows (ids, left padding, ``<MEM>``
counts) of the documents' text, the compressor's hidden states and the connector's vectors
against ``compressed.safetensors``, the decoder ids and ``<MEM>`` positions, and the greedy
ids and texts of one batch per checkpoint, rate and token limit. Through the training code:
the collated rows and labels of each ``losses.json`` case from its text, and its loss.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from bench.compressors._api import CompressionRequest, TargetModel
from bench.compressors.soft.pisco.compressor import Pisco, make_pisco
from bench.compressors.soft.pisco.layout import left_pad
from bench.generation import DecoderPrompt, GenerationSettings
from bench.records import CompressedEmbeddings
from tests.bench.compressors.soft.reference_fixtures import (
    ReferenceFixture,
    case_ids,
    load_fixture,
    reference_root,
    report_missing,
)

METHOD = "pisco"
CASES = case_ids(METHOD)
KINDS = sorted({kind for kind in ("regeneration", "qa") if case_ids(METHOD, kind)})
DOCUMENT_BREAK = "\n\n"

CompressorFor = Callable[[dict[str, Any]], Pisco]


def base_dir(case: dict[str, Any]) -> Path:
    """The case's base model, beside the fixture root (``base_model`` names its folder)."""
    path = reference_root().parent / Path(case["base_model"]).name
    if not path.is_dir():
        report_missing("the base model of the pisco fixtures", path)
    return path


def load_base(case: dict[str, Any]) -> TargetModel:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = base_dir(case)
    model = AutoModelForCausalLM.from_pretrained(str(path)).eval()  # type: ignore[no-untyped-call]
    return TargetModel(str(path), AutoTokenizer.from_pretrained(str(path)), model)


def compressor_key(case: dict[str, Any]) -> tuple[str, int, int]:
    """What a case's compressor depends on: checkpoint, rate and chunk length."""
    return case["checkpoint"], case["compr_rate"], case["compressor_max_length"]


def compressors_of(fixture: ReferenceFixture) -> CompressorFor:
    """One compressor (own base-model copy) per :func:`compressor_key`, built on first use;
    each document of a case is one paragraph of the request's context."""
    built: dict[tuple[str, int, int], Pisco] = {}

    def get(case: dict[str, Any]) -> Pisco:
        key = compressor_key(case)
        if key not in built:
            options = {"checkpoint": str(fixture.path / case["checkpoint"]),
                       "compression_rate": case["compr_rate"],
                       "compressor_max_length": case["compressor_max_length"],
                       "split": "paragraphs"}
            compressor = make_pisco(load_base(case), options)
            assert isinstance(compressor, Pisco)
            built[key] = compressor
        return built[key]

    return get


@pytest.fixture(scope="module")
def fixture() -> ReferenceFixture:
    return load_fixture(METHOD)


@pytest.fixture(scope="module")
def compressor_for(fixture: ReferenceFixture) -> CompressorFor:
    return compressors_of(fixture)


def request_of(case: dict[str, Any]) -> CompressionRequest:
    return CompressionRequest(DOCUMENT_BREAK.join(case["documents"]), case.get("question"))


def prompt_of(case: dict[str, Any]) -> DecoderPrompt:
    return DecoderPrompt(kind=case["kind"], prefix="", suffix="", question=case.get("question"))


def compress(compressor: Pisco, case: dict[str, Any]) -> CompressedEmbeddings:
    result = compressor.compress([request_of(case)])[0]
    assert isinstance(result, CompressedEmbeddings)
    return result


@pytest.mark.parametrize("case_id", CASES)
def test_compressor_rows_match(fixture: ReferenceFixture, compressor_for: CompressorFor,
                               case_id: str) -> None:
    case = fixture.case(case_id)
    compressor = compressor_for(case)
    documents = compressor.documents(request_of(case))
    assert documents == case["documents"]
    layout = compressor.compressor_rows(documents)
    assert layout.mems_per_chunk == case["n_mems_per_chunk"]
    assert sum(layout.mems_per_chunk) == case["num_mem"]
    ids, mask = left_pad(layout.rows, compressor.parts.compressor_tokenizer.pad_id)
    assert ids.tolist() == case["compressor_input_ids"]
    assert mask.tolist() == case["compressor_attention_mask"]
    assert compressor.model.compressor_mem == case["compressor_mem_token_id"]
    assert compressor.parts.compressor_tokenizer.pad_id == case["pad_token_id"]


@pytest.mark.parametrize("case_id", CASES)
def test_memory_vectors_match(fixture: ReferenceFixture, compressor_for: CompressorFor,
                              case_id: str) -> None:
    case = fixture.case(case_id)
    compressor = compressor_for(case)
    ids = torch.tensor(case["compressor_input_ids"])
    mask = torch.tensor(case["compressor_attention_mask"])
    with torch.no_grad():
        states = compressor.model.memory_states(ids, mask)
    vectors = compress(compressor, case).embeddings
    for found, name in ((states, "compressor_hidden"), (vectors, "embeddings")):
        torch.testing.assert_close(found, fixture.tensors[f"{case_id}.{name}"],
                                   atol=fixture.tensor_atol, rtol=fixture.tensor_rtol)


@pytest.mark.parametrize("case_id", CASES)
def test_decoder_ids_and_memory_positions(fixture: ReferenceFixture,
                                          compressor_for: CompressorFor, case_id: str) -> None:
    case = fixture.case(case_id)
    compressor = compressor_for(case)
    ids = compressor.decoder_ids(compress(compressor, case), prompt_of(case))
    assert ids == case["decoder_input_ids"]
    positions = [index for index, token in enumerate(ids) if token == compressor.model.ids.mem]
    assert positions == case["decoder_mem_positions"]
    assert positions == fixture.tensors[f"{case_id}.decoder_mem_positions"].tolist()
    decoder_ids = compressor.model.ids
    assert (decoder_ids.mem, decoder_ids.ae, decoder_ids.eos) == (
        case["decoder_mem_token_id"], case["decoder_ae_token_id"], case["eos_token_id"])


@pytest.mark.parametrize("kind", KINDS)
def test_greedy_ids_match_in_one_batch(fixture: ReferenceFixture,
                                       compressor_for: CompressorFor, kind: str) -> None:
    check_greedy_batches(fixture, compressor_for, kind)


def check_greedy_batches(fixture: ReferenceFixture, compressor_for: CompressorFor,
                         kind: str) -> None:
    """The cases of ``kind``, one batch per compressor and token limit, give the recorded
    greedy ids, stops and texts."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for case in fixture.cases:
        if case["kind"] == kind:
            groups.setdefault((*compressor_key(case), case["max_new_tokens"]), []).append(case)
    for cases in groups.values():
        check_greedy_batch(compressor_for(cases[0]), cases)


def check_greedy_batch(compressor: Pisco, cases: list[dict[str, Any]]) -> None:
    settings = GenerationSettings(max_new_tokens=cases[0]["max_new_tokens"])
    compressed = compressor.compress([request_of(case) for case in cases])
    items = [(c, prompt_of(case)) for c, case in zip(compressed, cases, strict=True)]
    results = compressor.generate_ids(items, settings)
    outputs = compressor.generate(items, settings)
    for case, result, output in zip(cases, results, outputs, strict=True):
        eos = [case["eos_token_id"]] if result.stopped_at_eos else []
        assert [*result.token_ids, *eos] == case["expected_token_ids"], case["id"]
        assert result.stopped_at_eos == case["stopped_at_eos"], case["id"]
        assert output.text == case["expected_text"] == case["reference_generate_text"]
        assert output.generated_tokens == len(result.token_ids)


@pytest.fixture(scope="module")
def trainer_for(fixture: ReferenceFixture) -> Callable[[dict[str, Any]], Any]:
    """The training code's model and collator, from each case's checkpoint (``--init-from``)."""
    from bench.compressors.soft.pisco.training import build
    from bench.training.config import TrainConfig

    built: dict[tuple[str, int, int], Any] = {}

    def get(case: dict[str, Any]) -> Any:
        key = compressor_key(case)
        if key not in built:
            extra = {"compression_rate": case["compr_rate"],
                     "compressor_max_length": case["compressor_max_length"], "ae_ratio": 1.0}
            config = TrainConfig(stage="pretrain", method=METHOD, base=str(base_dir(case)),
                                 data="unused", out="unused",
                                 init_from=str(fixture.path / case["checkpoint"]), extra=extra)
            result = build(config, cuda=False)
            result.parts.model.eval()
            built[key] = result
        return built[key]

    return get


@pytest.mark.parametrize("case_id", CASES)
def test_training_losses_match(fixture: ReferenceFixture,
                               trainer_for: Callable[[dict[str, Any]], Any],
                               case_id: str) -> None:
    from bench.training.example import Example

    recorded = fixture.losses["cases"][case_id]
    case = fixture.case(case_id)
    built = trainer_for({**case, "checkpoint": recorded["checkpoint"]})
    collate = built.collate
    if case["kind"] == "qa":
        batch = collate.batch([collate.documents_answer(case["documents"], case["question"],
                                                        case["answer"])])
    else:
        batch = collate([Example(DOCUMENT_BREAK.join(case["documents"]), "regeneration",
                                 DOCUMENT_BREAK.join(case["documents"]))])
    assert batch.compressor_input_ids.tolist() == recorded["compressor_input_ids"]
    assert batch.compressor_attention_mask.tolist() == recorded["compressor_attention_mask"]
    assert batch.decoder_input_ids[0].tolist() == recorded["decoder_input_ids"]
    assert batch.decoder_attention_mask[0].tolist() == recorded["decoder_attention_mask"]
    assert batch.labels[0].tolist() == recorded["labels"]
    assert batch.target_tokens == recorded["num_targets"]
    with torch.no_grad():
        loss = (built.parts.model(batch) / batch.target_tokens).item()
    assert loss == pytest.approx(recorded["loss"], abs=fixture.loss_atol)


def several_checkpoints(fixture: ReferenceFixture, root: Path) -> ReferenceFixture:
    """A copy of the fixture set (files linked) whose cases alternate between the original
    checkpoint folder and a second one holding the same files."""
    copy = root / METHOD
    copy.mkdir(parents=True)
    for item in fixture.path.iterdir():
        if item.name != "cases.jsonl":
            (copy / item.name).symlink_to(item, target_is_directory=item.is_dir())
    cases = []
    seen: dict[str, int] = {}
    for case in fixture.cases:
        index = seen[case["kind"]] = seen.get(case["kind"], -1) + 1
        second = f"{case['checkpoint']}_second"
        if not (copy / second).exists():
            (copy / second).symlink_to(fixture.path / case["checkpoint"],
                                       target_is_directory=True)
        cases.append({**case, "checkpoint": second} if index % 2 else case)
    (copy / "cases.jsonl").write_text("".join(json.dumps(case) + "\n" for case in cases))
    return ReferenceFixture(copy)


@pytest.mark.parametrize("kind", KINDS)
def test_greedy_batches_hold_when_cases_use_several_checkpoints(
        tmp_path: Path, fixture: ReferenceFixture, kind: str) -> None:
    synthetic = several_checkpoints(fixture, tmp_path / "reference")
    kinds = [case for case in synthetic.cases if case["kind"] == kind]
    assert len({case["checkpoint"] for case in kinds}) == min(2, len(kinds))
    check_greedy_batches(synthetic, compressors_of(synthetic), kind)

