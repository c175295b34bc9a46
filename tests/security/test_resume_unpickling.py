"""Resuming a training run runs no code found in its checkpoint folder.

``OUT/checkpoint-N/`` may come from someone else. Each of its files, and each file that
accelerate's own checkpointing would read there, is replaced in turn by a pickle whose
unpickling writes a marker file. The resumed run either never reads the file or stops with
one line naming it; the marker never appears.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from bench.substrate.errors import DEBUG_ENV
from bench.train import main
from bench.training.synthetic import write_text_corpus

STORIES = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "stories260K_hf"
# What accelerate's save_state writes beside the weights; its load_state reads them back.
ACCELERATE_FILES = ("custom_checkpoint_0.pkl", "random_states_0.pkl", "optimizer.bin",
                    "scheduler.bin", "sampler.bin", "scaler.pt", "pytorch_model.bin")


class Planted:
    """Unpickling it creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return exec, (f"open({str(self.marker)!r}, 'w').close()",)


@pytest.fixture(autouse=True)
def _no_debug(monkeypatch: pytest.MonkeyPatch, one_torch_thread: None) -> None:
    monkeypatch.delenv(DEBUG_ENV, raising=False)


@pytest.fixture(scope="module")
def stories() -> Path:
    if not STORIES.is_dir():
        pytest.skip(f"real tiny model not found at {STORIES} (developer checkouts only)")
    return STORIES.resolve()


def _arguments(stories: Path, corpus: Path, out: Path) -> list[str]:
    return ["pretrain", "--preset", "tiny-cpu", "--method", "500x", "--base", str(stories),
            "--data", str(corpus), "--out", str(out), "--steps", "2", "--save-every", "2",
            "--eval-every", "0", "--no-progress"]


@pytest.fixture(scope="module")
def trained(stories: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A finished two-step run (``checkpoint-0000002``) and its corpus."""
    folder = tmp_path_factory.mktemp("trained")
    texts = [f"Lily had {n} red balls. She gave {n % 3} of them to Tom." for n in range(48)]
    corpus = write_text_corpus(texts, folder / "corpus", dev=8)
    assert main(_arguments(stories, corpus, folder / "out")) == 0
    return folder / "out", corpus


def _planted_copy(out: Path, name: str, target: Path, marker: Path) -> None:
    shutil.copytree(out, target)
    shutil.rmtree(target / "final")
    (checkpoint,) = target.glob("checkpoint-*")
    (checkpoint / name).unlink(missing_ok=True)
    torch.save(Planted(marker), checkpoint / name)


def _files(out: Path) -> list[str]:
    (checkpoint,) = out.glob("checkpoint-*")
    return sorted(str(p.relative_to(checkpoint)) for p in checkpoint.rglob("*") if p.is_file())


@pytest.mark.slow
def test_a_planted_pickle_in_any_checkpoint_file_never_runs(
        trained: tuple[Path, Path], stories: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    out, corpus = trained
    names = _files(out)
    refused = []
    for index, name in enumerate([*names, *(n for n in ACCELERATE_FILES if n not in names)]):
        marker = tmp_path / f"ran-{index}"
        copy = tmp_path / f"run-{index}"
        _planted_copy(out, name, copy, marker)
        status = main(_arguments(stories, corpus, copy))
        errors = [line for line in capsys.readouterr().err.splitlines()
                  if line.startswith("error:")]
        assert not marker.exists(), f"unpickling {name} ran the planted code"
        assert status in (0, 2), name
        if status == 2:
            assert len(errors) == 1 and Path(name).name in errors[0], errors
            refused.append(name)
    # Every file of the training state is read, and refused; the evaluation export is not.
    assert refused == [name for name in names if not name.startswith("soft_")]
