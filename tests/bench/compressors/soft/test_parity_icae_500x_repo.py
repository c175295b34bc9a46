"""icae (variant=500x-baseline) against the ICAE baseline of the 500xCompressor code
(fixtures in ``<reference root>/icae_500x_repo``)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bench.compressors import CompressionRequest, build_compressor
from bench.compressors.soft.repo_checkpoint import RepoCheckpointError
from bench.generation import GenerationSettings
from tests.bench.compressors.soft import repo_parity as parity
from tests.bench.compressors.soft.reference_fixtures import case_ids, load_fixture

FOLDER = "icae_500x_repo"
CASES = case_ids(FOLDER)
LOSS_CASES = parity.loss_case_ids(FOLDER)


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread: None) -> None:
    """The reference ran with one torch thread."""


@pytest.mark.parametrize("case_id", CASES)
def test_encoder_ids_from_the_context_text(case_id: str) -> None:
    parity.check_encoder_ids(FOLDER, case_id)


@pytest.mark.parametrize("case_id", CASES)
def test_memory_slots_and_positions(case_id: str) -> None:
    parity.check_compressed_tensors(FOLDER, case_id)


@pytest.mark.parametrize("case_id", CASES)
def test_decoder_embeddings_prompt_and_positions(case_id: str) -> None:
    parity.check_decoder_input(FOLDER, case_id)


@pytest.mark.parametrize("case_id", CASES)
def test_greedy_token_ids(case_id: str) -> None:
    parity.check_greedy_tokens(FOLDER, case_id)


@pytest.mark.parametrize("case_id", LOSS_CASES)
def test_training_loss(case_id: str) -> None:
    parity.check_training_loss(FOLDER, case_id)


def test_training_targets_example() -> None:
    parity.check_targets_example(FOLDER)


def test_loader_reads_the_reference_checkpoints() -> None:
    parity.check_loader_reads_reference_files(FOLDER)


def test_regeneration_is_refused_without_the_ae_embedding() -> None:
    fixture = load_fixture(FOLDER)
    qa = next(c for c in fixture.cases if c["kind"] == "qa")
    regeneration = next(c for c in fixture.cases if c["kind"] == "regeneration")
    _, _, compressor = parity.build_for_case(FOLDER, qa["id"])
    (record,) = compressor.compress([CompressionRequest(regeneration["context"])])
    with pytest.raises(ValueError, match=re.escape(qa["checkpoint"]) + ".*ae_embedding"):
        compressor.generate([(record, parity.prompt_of(regeneration))],  # type: ignore[attr-defined]
                            GenerationSettings(max_new_tokens=2))


@pytest.mark.parametrize("damage", ["drop", "reshape", "drop_memory"])
def test_damaged_checkpoint_is_refused_naming_the_tensor(tmp_path: Path, damage: str) -> None:
    fixture = load_fixture(FOLDER)
    case = fixture.cases[0]
    path, victim = parity.damaged_copy(fixture, case, tmp_path, damage)
    options = parity.case_options(fixture, case, checkpoint=str(path))
    with pytest.raises(RepoCheckpointError, match=re.escape(victim)):
        build_compressor("icae", parity.stories_target(), options)


@pytest.mark.parametrize("case_id", case_ids(FOLDER, "regeneration"))
def test_targets_without_loss_on_padding(case_id: str) -> None:
    parity.check_targets_without_padding(FOLDER, case_id)
