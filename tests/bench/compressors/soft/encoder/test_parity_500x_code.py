"""``500x`` and ``icae,variant=500x-baseline`` against the 500xCompressor code: fixtures in
``<reference root>/500x`` and ``<reference root>/icae_500x_repo``; every check reads its
expectations from the fixture folder (see :mod:`.repo_parity`)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import torch

from bench.compressors import CompressionRequest, build_compressor
from bench.compressors.soft.encoder import compressor as soft_compressor
from bench.compressors.soft.encoder.repo_checkpoint import RepoCheckpointError
from bench.generation import DecoderPrompt, GenerationSettings
from bench.training.example import Example
from tests.bench.compressors.soft.encoder import repo_parity as parity
from tests.bench.compressors.soft.reference_fixtures import case_ids, load_fixture

FOLDERS = sorted(parity.METHODS)  # "500x", "icae_500x_repo"
CASES = [(folder, case) for folder in FOLDERS for case in case_ids(folder)]
LOSS_CASES = [(folder, case) for folder in FOLDERS for case in parity.loss_case_ids(folder)]
FIRST_OF_EACH_KIND = [(folder, ids[0]) for folder in FOLDERS
                      for ids in (case_ids(folder, "regeneration"), case_ids(folder, "qa")) if ids]
REGENERATION_CASES = [(folder, case) for folder in FOLDERS
                      for case in case_ids(folder, "regeneration")]


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread: None) -> None:
    """The reference ran with one torch thread."""


@pytest.mark.parametrize(("folder", "case_id"), CASES)
def test_encoder_ids_from_the_context_text(folder: str, case_id: str) -> None:
    parity.check_encoder_ids(folder, case_id)


@pytest.mark.parametrize(("folder", "case_id"), CASES)
def test_compressed_tensors_and_positions(folder: str, case_id: str) -> None:
    parity.check_compressed_tensors(folder, case_id)


@pytest.mark.parametrize(("folder", "case_id"), CASES)
def test_decoder_input_prompt_and_positions(folder: str, case_id: str) -> None:
    parity.check_decoder_input(folder, case_id)


@pytest.mark.parametrize(("folder", "case_id"), CASES)
def test_greedy_token_ids(folder: str, case_id: str) -> None:
    parity.check_greedy_tokens(folder, case_id)


@pytest.mark.parametrize(("folder", "case_id"), LOSS_CASES)
def test_training_loss(folder: str, case_id: str) -> None:
    parity.check_training_loss(folder, case_id)


@pytest.mark.parametrize(("folder", "case_id"), REGENERATION_CASES)
def test_targets_without_loss_on_padding(folder: str, case_id: str) -> None:
    parity.check_targets_without_padding(folder, case_id)


@pytest.mark.parametrize("folder", FOLDERS)
def test_training_targets_example(folder: str) -> None:
    parity.check_targets_example(folder)


@pytest.mark.parametrize("folder", FOLDERS)
def test_loader_reads_the_reference_checkpoints(folder: str) -> None:
    parity.check_loader_reads_reference_files(folder)


@pytest.mark.parametrize("damage", ["drop", "reshape", "drop_memory"])
@pytest.mark.parametrize("folder", FOLDERS)
def test_damaged_checkpoint_is_refused_naming_the_tensor(tmp_path: Path, folder: str,
                                                         damage: str) -> None:
    fixture = load_fixture(folder)
    case = fixture.cases[0]
    path, victim = parity.damaged_copy(fixture, case, tmp_path, damage)
    options = parity.case_options(fixture, case, checkpoint=str(path))
    with pytest.raises(RepoCheckpointError, match=re.escape(victim)):
        build_compressor(parity.METHODS[folder][0], parity.stories_target(), options)


def test_an_icae_checkpoint_is_refused_for_500x() -> None:
    icae = load_fixture("icae_500x_repo")
    case = next(c for c in icae.cases if c["decoder_prompt"] == "ae")
    options = {"checkpoint": str(icae.path / case["checkpoint"])}
    with pytest.raises(RepoCheckpointError, match="ae_embedding"):
        build_compressor("500x", parity.stories_target(), options)


def test_icae_regeneration_is_refused_without_the_ae_embedding() -> None:
    folder = "icae_500x_repo"
    fixture = load_fixture(folder)
    qa = next(c for c in fixture.cases if c["kind"] == "qa")
    regeneration = next(c for c in fixture.cases if c["kind"] == "regeneration")
    _, _, compressor = parity.build_for_case(folder, qa["id"])
    (record,) = compressor.compress([CompressionRequest(regeneration["context"])])
    with pytest.raises(ValueError, match=re.escape(qa["checkpoint"]) + ".*ae_embedding"):
        compressor.generate([(record, parity.prompt_of(regeneration))],  # type: ignore[attr-defined]
                            GenerationSettings(max_new_tokens=2))


@pytest.mark.parametrize("folder", FOLDERS)
def test_an_encoder_pass_with_dropout_on_is_rejected(monkeypatch: pytest.MonkeyPatch,
                                                     folder: str) -> None:
    """A fault that perturbs our fp32 and float64 passes alike (LoRA dropout left on) must not
    widen the tolerance until the perturbed tensors pass."""
    build = parity.build_for_case

    def with_dropout(*args: Any, **kwargs: Any) -> Any:
        fixture, case, compressor = build(*args, **kwargs)
        compressor.model.train()
        return fixture, case, compressor

    monkeypatch.setattr(parity, "build_for_case", with_dropout)
    torch.manual_seed(0)
    with pytest.raises(AssertionError):
        parity.check_compressed_tensors(folder, case_ids(folder)[0])


@pytest.mark.parametrize("folder", FOLDERS)
def test_an_inflated_fp32_floor_is_refused(folder: str) -> None:
    atol = load_fixture(folder).tensor_atol
    with pytest.raises(AssertionError, match="differ by 4"):
        parity.tensor_tolerance(atol, 4.0)


@pytest.mark.parametrize("folder", FOLDERS)
def test_the_qa_prompt_keeps_the_question_as_given(folder: str) -> None:
    """The reference formats the question as read, surrounding whitespace included, both for
    decoding and for the fine-tuning rows."""
    fixture = load_fixture(folder)
    case = next(c for c in fixture.cases if c["kind"] == "qa")
    _, _, compressor = parity.build_for_case(folder, case["id"])
    question = f"  {case['question']} \n"
    prompt = case["decoder_prompt"].replace(case["question"], question)
    expected = compressor.target.tokenizer(prompt, add_special_tokens=False)["input_ids"]
    assert expected != case["decoder_prompt_ids"]
    (record,) = compressor.compress([CompressionRequest(case["context"])])
    item = compressor.decoder_item(record, DecoderPrompt("qa", "", "", question=question))
    assert list(item.prompt_ids) == expected
    rows = compressor.model.training_ids(Example(case["context"], "qa", case["answer"], question))
    assert rows.decoder_ids[:len(expected)] == expected


@pytest.mark.parametrize(("folder", "case_id"), FIRST_OF_EACH_KIND)
def test_generation_stops_at_the_eos_id(monkeypatch: pytest.MonkeyPatch, folder: str,
                                        case_id: str) -> None:
    """The fixtures never emit EOS, so it is forced halfway; a stop set without the model's
    EOS id (a wrong hard-coded one) does not stop there."""
    _, case, compressor = parity.build_for_case(folder, case_id)
    expected, eos = case["expected_token_ids"], case["eos_token_id"]
    step = len(expected) // 2
    ids, text = parity.greedy_with_forced_token(compressor, case, eos, step)
    assert ids == [*expected[:step], eos]
    tokenizer = compressor.target.tokenizer
    assert text == tokenizer.decode(expected[:step], skip_special_tokens=True)
    monkeypatch.setattr(soft_compressor, "eos_ids", lambda target, model: [eos + 1])
    _, _, wrong = parity.build_for_case(folder, case_id)
    assert parity.greedy_with_forced_token(wrong, case, eos, step)[0] != ids
