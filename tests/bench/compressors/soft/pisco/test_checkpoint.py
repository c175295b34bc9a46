"""Checkpoints ``pisco`` refuses, each in one line naming the file and what is wrong."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from bench.compressors.soft._checkpoint_files import CheckpointFileError
from bench.compressors.soft.pisco.checkpoint import CONNECTOR, DECODER_STATE, read_checkpoint
from tests.bench.compressors.soft.reference_fixtures import load_fixture


@pytest.fixture()
def copy(tmp_path: Path) -> Path:
    """A writable copy of the fixture's checkpoint folder."""
    target = tmp_path / "checkpoint"
    shutil.copytree(load_fixture("pisco").path / "checkpoint", target)
    for path in [target, *target.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return target


def refusal(path: Path) -> str:
    with pytest.raises(CheckpointFileError) as error:
        read_checkpoint(str(path))
    message = str(error.value)
    assert "\n" not in message
    return message


def test_the_earlier_release_layout_is_named(copy: Path) -> None:
    (copy / DECODER_STATE).unlink()
    for name in ("adapters.pth", "decoder_first_last_layers.pth"):
        torch.save({}, copy / name)
    assert "earlier PISCO/COCOM release" in refusal(copy)


def test_pickled_objects_are_not_loaded(copy: Path) -> None:
    state = torch.load(copy / DECODER_STATE, weights_only=True)
    torch.save({**state, "note": Path("code")}, copy / DECODER_STATE)
    message = refusal(copy)
    assert DECODER_STATE in message and "not loaded" in message


def test_a_connector_of_another_width_is_refused(copy: Path) -> None:
    connector = torch.load(copy / CONNECTOR, weights_only=True)
    connector["0.weight"] = connector["0.weight"][:-1]
    torch.save(connector, copy / CONNECTOR)
    assert "compressor_mlp_hidden_dim" in refusal(copy)


def test_a_lora_matrix_without_its_pair_is_refused(copy: Path) -> None:
    state = torch.load(copy / DECODER_STATE, weights_only=True)
    dropped = next(key for key in state if key.endswith("lora_B.default.weight"))
    del state[dropped]
    torch.save(state, copy / DECODER_STATE)
    assert dropped.split(".lora_B")[0] in refusal(copy)
