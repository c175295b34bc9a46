"""Parity of ``xrag`` with Hannibal046/xRAG on the reference fixtures.

Each case's checkpoint folder (the released full-model format) is the target model and its
retriever folder the ``retriever=``. Per case: the retriever ids and embeddings, the projected
vectors, the prompt ids with their ``<xRAG>`` positions, the decoder's input vectors, the
greedy ids (plain and with the evaluation's stop strings) and the training losses (through
the training method's collate function and module) match what the reference recorded.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import torch

from bench.compressors._api import CompressionRequest
from bench.compressors.soft.decode import greedy_ids
from bench.compressors.soft.xrag.compressor import Xrag
from bench.compressors.soft.xrag.prompts import PARAPHRASE_INSTRUCTIONS
from bench.compressors.soft.xrag.retriever import document_ids
from bench.compressors.soft.xrag.training import (
    MAX_SEQ_LENGTH,
    XragBatch,
    XragCollator,
    XragTrainingModule,
    XragTrainingOptions,
)
from bench.generation import DecoderPrompt, GenerationSettings
from bench.records import CompressedEmbeddings
from bench.training.example import Example
from tests.bench.compressors.soft.reference_fixtures import (
    ReferenceFixture,
    case_ids,
    load_fixture,
)
from tests.bench.compressors.soft.xrag.fixture_models import METHOD, Compressors, case_context

CASES = case_ids(METHOD)
KINDS = sorted({kind for kind in ("regeneration", "qa") if case_ids(METHOD, kind)})
RUN_EVAL_STOPS = ("\n", ".", ",")
"""The stop strings of the reference's evaluation script (``stop_sequences_criteria``)."""


@pytest.fixture(scope="module")
def fixture() -> ReferenceFixture:
    return load_fixture(METHOD)


@pytest.fixture(scope="module")
def compressor_for(fixture: ReferenceFixture) -> Compressors:
    return Compressors(fixture)


def decoder_prompt(case: dict[str, Any]) -> DecoderPrompt:
    return DecoderPrompt(kind=case["kind"], prefix="", suffix="", question=case.get("question"))


def compress(compressor: Xrag, case: dict[str, Any]) -> CompressedEmbeddings:
    result = compressor.compress([CompressionRequest(case_context(case), case.get("question"))])
    assert isinstance(result[0], CompressedEmbeddings)
    return result[0]


def assert_close(actual: torch.Tensor, expected: torch.Tensor, fixture: ReferenceFixture
                 ) -> None:
    assert actual.shape == expected.shape
    torch.testing.assert_close(actual.float(), expected.float(), atol=fixture.tensor_atol,
                               rtol=fixture.tensor_rtol)


@pytest.mark.parametrize("case_id", CASES)
def test_retriever_ids_and_embeddings(fixture: ReferenceFixture, compressor_for: Compressors,
                                      case_id: str) -> None:
    case = fixture.case(case_id)
    compressor = compressor_for(case)
    documents = compressor.documents(case_context(case))
    assert documents == case["documents"]
    retriever = compressor.retriever
    ids = document_ids(retriever.tokenizer, documents, case["retriever_max_length"])
    recorded = [[t for t, m in zip(row, mask, strict=True) if m]
                for row, mask in zip(case["retriever_input_ids"],
                                     case["retriever_attention_mask"], strict=True)]
    assert ids == recorded
    assert_close(retriever.embed(documents), fixture.tensors[f"{case_id}.retrieval_embeds"],
                 fixture)


@pytest.mark.parametrize("case_id", CASES)
def test_projected_vectors(fixture: ReferenceFixture, compressor_for: Compressors,
                           case_id: str) -> None:
    case = fixture.case(case_id)
    compressor = compressor_for(case)
    expected = fixture.tensors[f"{case_id}.projected"]
    result = compress(compressor, case)
    assert result.stats.compressed_tokens == case["num_xrag_tokens"] == expected.shape[0]
    assert_close(result.embeddings, expected, fixture)
    from_embeddings = compressor.project(fixture.tensors[f"{case_id}.retrieval_embeds"])
    assert_close(from_embeddings, expected, fixture)


@pytest.mark.parametrize("case_id", CASES)
def test_prompt_ids_and_positions(fixture: ReferenceFixture, compressor_for: Compressors,
                                  case_id: str) -> None:
    case = fixture.case(case_id)
    compressor = compressor_for(case)
    documents = case["num_xrag_tokens"]
    prompt = decoder_prompt(case)
    assert compressor.prompt_text(documents, prompt) == case["prompt"]
    ids = compressor.prompt_ids(documents, prompt)
    assert ids == case["input_ids"]
    assert compressor.xrag_id == case["xrag_token_id"]
    positions = [index for index, token in enumerate(ids) if token == compressor.xrag_id]
    assert positions == case["xrag_positions"]
    assert positions == fixture.tensors[f"{case_id}.xrag_positions"].tolist()


@pytest.mark.parametrize("case_id", CASES)
def test_decoder_input_overwrites_each_xrag_token(fixture: ReferenceFixture,
                                                  compressor_for: Compressors,
                                                  case_id: str) -> None:
    case = fixture.case(case_id)
    compressor = compressor_for(case)
    embeds = compressor.decoder_input(compress(compressor, case), decoder_prompt(case))
    positions = fixture.tensors[f"{case_id}.xrag_positions"]
    assert_close(embeds[positions], fixture.tensors[f"{case_id}.projected"], fixture)
    words = torch.ones(len(case["input_ids"]), dtype=torch.bool)
    words[positions] = False
    table = compressor.model.get_input_embeddings()
    expected = table(torch.tensor(case["input_ids"]))[words]
    assert torch.equal(embeds[words], expected)


def batches(fixture: ReferenceFixture, kind: str) -> Iterator[list[dict[str, Any]]]:
    """The cases of ``kind``, one batch per checkpoint, retriever and token limit."""
    groups: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    for case in fixture.cases:
        if case["kind"] == kind:
            key = (case["checkpoint"], case["retriever"], case["max_new_tokens"])
            groups.setdefault(key, []).append(case)
    yield from groups.values()


def check_greedy_batch(compressor: Xrag, cases: list[dict[str, Any]]) -> None:
    """One batch of the cases gives the recorded ids and stops (and the answers their text),
    and the recorded ids of the evaluation script's stop strings."""
    requests = [CompressionRequest(case_context(case), case.get("question")) for case in cases]
    items = [(c, decoder_prompt(case))
             for c, case in zip(compressor.compress(requests), cases, strict=True)]
    decoder = [compressor.decoder_item(c, p) for c, p in items]
    tokenizer = compressor.target.tokenizer
    plain = GenerationSettings(max_new_tokens=cases[0]["max_new_tokens"])
    rows, _, _ = greedy_ids(compressor.model, tokenizer, decoder, plain, compressor.eos_ids)
    texts = compressor.generate(items, plain)
    stopping = GenerationSettings(plain.max_new_tokens, RUN_EVAL_STOPS)
    stopped, _, _ = greedy_ids(compressor.model, tokenizer, decoder, stopping, compressor.eos_ids)
    for case, row, text, short in zip(cases, rows, texts, stopped, strict=True):
        assert row.with_eos == case["expected_token_ids"], case["id"]
        assert (row.stop_eos is not None) == case["stopped_at_eos"], case["id"]
        assert text.text == tokenizer.decode(row.tokens, skip_special_tokens=True)
        assert short.with_eos == case["run_eval_token_ids"], case["id"]


@pytest.mark.parametrize("kind", KINDS)
def test_greedy_ids_in_one_batch(fixture: ReferenceFixture, compressor_for: Compressors,
                                 kind: str) -> None:
    for cases in batches(fixture, kind):
        check_greedy_batch(compressor_for(cases[0]), cases)


def several_checkpoints(fixture: ReferenceFixture, root: Path) -> ReferenceFixture:
    """A copy of the fixture set (files linked) whose cases alternate between their
    checkpoint folder and a second folder holding the same files."""
    copy = root / METHOD
    copy.mkdir(parents=True)
    for item in fixture.path.iterdir():
        if item.name != "cases.jsonl":
            (copy / item.name).symlink_to(item, target_is_directory=item.is_dir())
    cases = []
    for index, case in enumerate(fixture.cases):
        second = Path(f"{case['checkpoint']}_second")
        if not (copy / second).exists():
            (copy / second).symlink_to(fixture.path / case["checkpoint"],
                                       target_is_directory=True)
        cases.append({**case, "checkpoint": str(second)} if index % 2 else case)
    (copy / "cases.jsonl").write_text("".join(json.dumps(case) + "\n" for case in cases))
    return ReferenceFixture(copy)


def test_greedy_batches_hold_when_cases_use_several_checkpoints(
        tmp_path: Path, fixture: ReferenceFixture) -> None:
    synthetic = several_checkpoints(fixture, tmp_path / "reference")
    kind = max(KINDS, key=lambda name: len(case_ids(METHOD, name)))
    groups = list(batches(synthetic, kind))
    if len(groups) < 2:
        pytest.skip(f"the fixture set has a single {kind} case")
    compressors = Compressors(synthetic)
    for cases in groups:
        check_greedy_batch(compressors(cases[0]), cases)


def fixed_instruction(index: int, document: str) -> int:
    return index


def loss_batch(compressor: Xrag, recorded: dict[str, Any], case: dict[str, Any]
               ) -> XragBatch:
    """The training batch of a loss case, made by the training collate function; the
    pretraining instruction is the one whose encoding the reference recorded."""
    stage = "pretrain" if case["kind"] == "regeneration" else "finetune"
    documents = recorded["retriever_input_text"]
    if stage == "pretrain":
        assert len(documents) == 1, case["id"]
        example = Example(documents[0], "regeneration", documents[0])
    else:
        example = Example(" ".join(case["documents"]), "qa", case["answer"], case["question"])
    for instruction in range(len(PARAPHRASE_INSTRUCTIONS)):
        collate = XragCollator(compressor.target.tokenizer, compressor.retriever.tokenizer,
                               stage, MAX_SEQ_LENGTH[stage], case["retriever_max_length"],
                               stage == "finetune", partial(fixed_instruction, instruction))
        batch = collate([example])
        if batch.student.input_ids[0].tolist() == recorded["xrag_input_ids"]:
            return batch
    raise AssertionError(f"{case['id']}: no paraphrase instruction gives the recorded ids")


def mean_loss(compressor: Xrag, batch: XragBatch, options: XragTrainingOptions) -> float:
    module = XragTrainingModule(compressor.model, compressor.projector,
                                compressor.retriever.model, compressor.xrag_id, options)
    with torch.no_grad():
        return float(module(batch)) / batch.target_tokens


@pytest.mark.parametrize("case_id", CASES)
def test_training_losses(fixture: ReferenceFixture, compressor_for: Compressors,
                         case_id: str) -> None:
    recorded = fixture.losses["cases"][case_id]
    case = fixture.case(case_id)
    compressor = compressor_for({**case, "checkpoint": recorded["checkpoint"]})
    batch = loss_batch(compressor, recorded, case)
    assert batch.student.labels[0].tolist() == recorded["xrag_labels"]
    assert batch.target_tokens == recorded["num_targets"]
    assert batch.documents.input_ids.tolist() == recorded["retriever_input_ids"]
    tolerance = fixture.loss_atol
    nll_only = XragTrainingOptions(alpha_nll=1.0, alpha_kl=0.0)
    assert mean_loss(compressor, batch, nll_only) == pytest.approx(recorded["nll_loss"],
                                                                   abs=tolerance)
    assert mean_loss(compressor, batch, XragTrainingOptions()) == pytest.approx(
        recorded["loss"], abs=tolerance)
    if batch.teacher is None:
        assert "kl_loss" not in recorded
        return
    assert batch.teacher.input_ids[0].tolist() == recorded["teacher_input_ids"]
    assert batch.teacher.labels[0].tolist() == recorded["teacher_labels"]
    kl_only = XragTrainingOptions(alpha_nll=0.0, alpha_kl=1.0)
    assert mean_loss(compressor, batch, kl_only) == pytest.approx(recorded["kl_loss"],
                                                                  abs=tolerance)
