"""``500x`` and ``icae,variant=500x-baseline`` against the 500xCompressor code: fixtures in
``<reference root>/500x`` and ``<reference root>/icae_500x_repo``; every check reads its
expectations from the fixture folder (see :mod:`.repo_parity`)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bench.compressors import CompressionRequest, build_compressor
from bench.compressors.soft.repo_checkpoint import RepoCheckpointError
from bench.generation import GenerationSettings
from tests.bench.compressors.soft import repo_parity as parity
from tests.bench.compressors.soft.reference_fixtures import case_ids, load_fixture

FOLDERS = sorted(parity.METHODS)  # "500x", "icae_500x_repo"
CASES = [(folder, case) for folder in FOLDERS for case in case_ids(folder)]
LOSS_CASES = [(folder, case) for folder in FOLDERS for case in parity.loss_case_ids(folder)]
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
