"""gist and AutoCompressor through the accelerate loop: resume, batches, export, refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from bench.compressors.soft.autocompressor.training import build_autocompressor
from bench.compressors.soft.gist.training import build_gist
from bench.training.config import TrainConfig
from bench.training.lm_methods import load_trained
from bench.training.loop import train
from bench.training.method import Substeps, TokenBatch, summed_loss


def _config(method: str, data: Path, base: Path, out: Path, **overrides: object) -> TrainConfig:
    values: dict[str, object] = {
        "stage": "pretrain", "method": method, "base": str(base), "data": str(data),
        "out": str(out), "num_mem": 2, "steps": 4, "lr": 1e-3, "batch_size": 2,
        "warmup_steps": 1, "eval_every": 0, "save_every": 2, "max_context_tokens": 32,
        "dev_size": 4, "progress": False, "training_substeps": 2, "segments_per_substep": 2}
    values.update(overrides)
    return TrainConfig(**values)  # type: ignore[arg-type]


def _final_tensors(out: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(out / "final" / "model.safetensors"))


@pytest.mark.parametrize("method", ["gist", "autocompressor"])
def test_resumed_run_ends_with_the_same_model(method: str, story_corpus: Path, stories: Path,
                                              tmp_path: Path) -> None:
    straight = train(_config(method, story_corpus, stories, tmp_path / "straight"))
    stopped = tmp_path / "stopped"
    train(_config(method, story_corpus, stories, stopped, steps=2))
    resumed = train(_config(method, story_corpus, stories, stopped))
    assert resumed.step == 4 and len(resumed.losses) == 2  # steps 3 and 4 only
    assert resumed.losses == straight.losses[2:]
    first, second = _final_tensors(tmp_path / "straight"), _final_tensors(stopped)
    assert first.keys() == second.keys()
    assert all(torch.equal(first[name], second[name]) for name in first)
    base = _final_tensors_of(stories)
    changed = [name for name in base if name in first
               and first[name].shape == base[name].shape
               and not torch.equal(first[name], base[name])]
    assert changed  # the LM itself was trained
    exported = json.loads((stopped / "final" / "config.json").read_text())
    assert exported["training_inputs"]["data"]["path"] == str(story_corpus)
    assert exported["training_inputs"]["base"]["path"] == str(stories)


def _final_tensors_of(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def test_autocompressor_batches_are_substeps_cut_by_their_content(
        story_corpus: Path, stories: Path, tmp_path: Path) -> None:
    from bench.training.data import load_examples

    config = _config("autocompressor", story_corpus, stories, tmp_path / "out",
                     training_substeps=3, segments_per_substep=2)
    built = build_autocompressor(config, False)
    examples, _ = load_examples(config.data, config.kind, None, 4, 0, None)
    batch = built.collate(examples[:2])
    assert isinstance(batch, Substeps) and len(batch.pieces) == 3
    width = sum(piece.input_ids.shape[1] for piece in batch.pieces)
    assert all(sum(piece.lengths) == piece.input_ids.shape[1] for piece in batch.pieces)
    assert all(len(piece.lengths) == 2 for piece in batch.pieces)
    assert batch.tokens == sum(int(piece.valid.sum()) for piece in batch.pieces) <= 2 * width
    assert batch.target_tokens == sum(piece.target_tokens for piece in batch.pieces)
    again = built.collate(examples[:2])
    assert [p.lengths for p in again.pieces] == [p.lengths for p in batch.pieces]
    others = [built.collate(examples[i:i + 2]).pieces[0].lengths for i in range(2, 12, 2)]
    assert any(lengths != batch.pieces[0].lengths for lengths in others)
    with torch.no_grad():
        carried = summed_loss(built.module, batch)
        alone = sum(built.module(piece)[0] for piece in batch.pieces)
    assert not torch.allclose(carried, alone)  # later pieces read the earlier summaries


def test_export_refuses_a_state_without_every_trained_tensor(stories: Path, story_corpus: Path,
                                                             tmp_path: Path) -> None:
    built = build_gist(_config("gist", story_corpus, stories, tmp_path), False)
    weights = {name: p.detach().clone() for name, p in built.module.named_parameters()}
    dropped = sorted(weights)[0]
    del weights[dropped]
    with pytest.raises(ValueError, match="lacks 1 trained tensor"):
        load_trained(built.module, weights)


def test_autocompressor_substeps_are_refused_under_deepspeed(
        monkeypatch: pytest.MonkeyPatch, story_corpus: Path, stories: Path,
        tmp_path: Path) -> None:
    monkeypatch.setattr("bench.training.loop.is_deepspeed", lambda _: True)
    with pytest.raises(ValueError, match="cannot run under DeepSpeed"):
        train(_config("autocompressor", story_corpus, stories, tmp_path / "out"))


def test_token_batch_counts_targets_after_the_first_position() -> None:
    labels = torch.tensor([[5, -100, 7, 8], [-100, -100, -100, 3]])
    batch = TokenBatch(torch.zeros(2, 4, dtype=torch.long), labels,
                       torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]]))
    assert (batch.target_tokens, batch.tokens) == (3, 7)
    moved = batch.to("cpu")
    assert torch.equal(moved.labels, labels) and moved.lengths == ()
