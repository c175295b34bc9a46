"""``autocompressor`` on the fixture checkpoint: what it refuses, its options, its file layouts."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from bench.compressors._api import CompressionRequest, TargetModel, build_compressor
from bench.compressors.soft.autocompressor.checkpoint import (
    SUMMARY_WEIGHT,
    AutoCompressorCheckpointError,
)
from bench.compressors.soft.autocompressor.compressor import AutoCompressor
from bench.records import CompressedEmbeddings
from tests.bench.compressors.soft.reference_fixtures import ReferenceFixture, load_fixture

METHOD = "autocompressor"
CONTEXTS = ("Tom had a red kite. The wind took it up into the sky and over the tall trees. "
            "Tom ran after it all the way to the park.",
            "Mia found a shiny stone.")


@pytest.fixture(scope="module")
def fixture() -> ReferenceFixture:
    return load_fixture(METHOD)


@pytest.fixture()
def copy_checkpoint(fixture: ReferenceFixture, tmp_path: Path) -> Callable[..., Path]:
    """A copy of the fixture checkpoint, with its config and tensors edited as asked."""

    def make(config: dict[str, Any] | None = None, drop: tuple[str, ...] = (),
             replace: dict[str, torch.Tensor] | None = None) -> Path:
        from safetensors.torch import load_file, save_file

        folder = tmp_path / "checkpoint"
        shutil.copytree(fixture.path / "checkpoint", folder)
        config_path = folder / "config.json"
        loaded = json.loads(config_path.read_text("utf-8"))
        for key, value in (config or {}).items():
            if value is None:
                loaded.pop(key, None)
            else:
                loaded[key] = value
        config_path.write_text(json.dumps(loaded), "utf-8")
        tensors = load_file(str(folder / "model.safetensors"))
        tensors = {name: t for name, t in tensors.items() if name not in drop}
        tensors.update(replace or {})
        save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
        return folder

    return make


def load_target(folder: Path, name: str | None = None) -> TargetModel:
    pytest.importorskip("sentencepiece")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(folder)).eval()  # type: ignore[no-untyped-call]
    return TargetModel(name or str(folder), AutoTokenizer.from_pretrained(str(folder)), model)


def build(target: TargetModel, **options: Any) -> AutoCompressor:
    compressor = build_compressor(METHOD, target, options)
    assert isinstance(compressor, AutoCompressor)
    return compressor


def softprompts(compressor: AutoCompressor, contexts: tuple[str, ...] = CONTEXTS
                ) -> list[torch.Tensor]:
    records = compressor.compress([CompressionRequest(context) for context in contexts])
    assert all(isinstance(record, CompressedEmbeddings) for record in records)
    return [record.embeddings for record in records if isinstance(record, CompressedEmbeddings)]


def test_checkpoint_without_summary_embeddings_is_refused(copy_checkpoint: Callable[..., Path]
                                                          ) -> None:
    target = load_target(copy_checkpoint(drop=(SUMMARY_WEIGHT,)))
    with pytest.raises(AutoCompressorCheckpointError, match=SUMMARY_WEIGHT) as error:
        build(target)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("field", ["summary_length", "accumulate_summary"])
def test_config_without_summary_fields_is_refused(copy_checkpoint: Callable[..., Path],
                                                  field: str) -> None:
    target = load_target(copy_checkpoint(config={field: None}))
    with pytest.raises(AutoCompressorCheckpointError, match=field):
        build(target)


def test_summary_embeddings_of_the_wrong_shape_are_refused(
        copy_checkpoint: Callable[..., Path], fixture: ReferenceFixture) -> None:
    summary_length = json.loads((fixture.path / "checkpoint" / "config.json").read_text())[
        "summary_length"]
    target = load_target(copy_checkpoint(config={"summary_length": summary_length + 1}))
    with pytest.raises(AutoCompressorCheckpointError, match="shape"):
        build(target)


def test_hub_id_missing_from_the_cache_fails_offline_in_one_line(
        fixture: ReferenceFixture, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    hub_id = "princeton-nlp/AutoCompressor-Llama-2-7b-6k"
    target = load_target(fixture.path / "checkpoint", name=hub_id)
    target.model.config.name_or_path = hub_id  # type: ignore[union-attr]
    with pytest.raises(AutoCompressorCheckpointError, match=hub_id) as error:
        build(target)
    assert "\n" not in str(error.value) and "cache" in str(error.value)


def test_sharded_checkpoint_gives_the_same_softprompts(
        copy_checkpoint: Callable[..., Path], fixture: ReferenceFixture) -> None:
    from safetensors.torch import load_file, save_file

    folder = copy_checkpoint()
    tensors = load_file(str(folder / "model.safetensors"))
    (folder / "model.safetensors").unlink()
    names = sorted(tensors)
    shards = {"model-00001-of-00002.safetensors": names[::2],
              "model-00002-of-00002.safetensors": names[1::2]}
    for shard, members in shards.items():
        save_file({name: tensors[name] for name in members}, str(folder / shard),
                  metadata={"format": "pt"})
    weight_map = {name: shard for shard, members in shards.items() for name in members}
    (folder / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {}, "weight_map": weight_map}), "utf-8")
    sharded = softprompts(build(load_target(folder)))
    plain = softprompts(build(load_target(fixture.path / "checkpoint")))
    for ours, reference in zip(sharded, plain, strict=True):
        torch.testing.assert_close(ours, reference, atol=0.0, rtol=0.0)


def test_segment_length_adds_summaries_per_segment(fixture: ReferenceFixture) -> None:
    compressor = build(load_target(fixture.path / "checkpoint"), segment_length=16)
    k = compressor.spec.summary_length
    segments = [len(compressor.context_segments(context)[0]) for context in CONTEXTS]
    assert segments[0] > 1 and segments[0] != segments[1]
    batched = softprompts(compressor)
    assert [sp.shape[0] for sp in batched] == [k * n for n in segments]
    for context, together in zip(CONTEXTS, batched, strict=True):
        (alone,) = softprompts(compressor, (context,))
        torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-5)
    chunked = compressor.compress_chunks([CONTEXTS[0]])
    torch.testing.assert_close(chunked.embeddings, batched[0], atol=1e-5, rtol=1e-5)


def test_max_context_tokens_cuts_before_segmenting(fixture: ReferenceFixture) -> None:
    target = load_target(fixture.path / "checkpoint")
    cut = build(target, max_context_tokens=10, segment_length=4)
    segments, truncated = cut.context_segments(CONTEXTS[0])
    full = target.tokenizer(CONTEXTS[0])["input_ids"]
    assert truncated and segments == [full[0:4], full[4:8], full[8:10]]
    (record,) = cut.compress([CompressionRequest(CONTEXTS[0])])
    assert record.extra == {"segments": 3, "context_ids": 10, "truncated": True}
    assert record.stats.compressed_tokens == 3 * cut.spec.summary_length


def test_without_accumulation_each_segment_replaces_the_summaries(
        copy_checkpoint: Callable[..., Path]) -> None:
    compressor = build(load_target(copy_checkpoint(config={"accumulate_summary": False})),
                       segment_length=12)
    segments, _ = compressor.context_segments(CONTEXTS[0])
    assert len(segments) > 2
    (whole,) = compressor.encoder.compress([segments])
    (before_last,) = compressor.encoder.compress([segments[:-1]])
    (last,) = compressor.encoder.compress([segments[-1:]], [before_last])
    assert whole.shape[0] == compressor.spec.summary_length
    torch.testing.assert_close(whole, last, atol=1e-6, rtol=1e-6)


def test_settings_identify_the_weights_and_options_are_checked(
        fixture: ReferenceFixture, copy_checkpoint: Callable[..., Path]) -> None:
    original = build(load_target(fixture.path / "checkpoint"), segment_length=32)
    settings = original.settings()
    config = json.loads((fixture.path / "checkpoint" / "config.json").read_text())
    assert settings["segment_length"] == 32 and settings["max_context_tokens"] is None
    assert settings["summary_length"] == config["summary_length"]
    assert settings["accumulate_summary"] == config["accumulate_summary"]
    same = build(load_target(copy_checkpoint()), segment_length=32).settings()
    assert same["weights_sha256"] == settings["weights_sha256"]
    with pytest.raises(ValueError, match="does not accept option"):
        build(load_target(fixture.path / "checkpoint"), num_mem=4)
    with pytest.raises(ValueError, match="segment_length must be >= 1"):
        build(load_target(fixture.path / "checkpoint"), segment_length=0)


def test_changed_weights_change_the_identity(fixture: ReferenceFixture,
                                             copy_checkpoint: Callable[..., Path]) -> None:
    original = build(load_target(fixture.path / "checkpoint")).settings()["weights_sha256"]
    summary = build(load_target(fixture.path / "checkpoint")).spec.embeddings
    changed = copy_checkpoint(replace={SUMMARY_WEIGHT: summary + 1.0})
    assert build(load_target(changed)).settings()["weights_sha256"] != original


def test_pytorch_bin_checkpoint_gives_the_same_softprompts(
        copy_checkpoint: Callable[..., Path], fixture: ReferenceFixture) -> None:
    from safetensors.torch import load_file

    folder = copy_checkpoint()
    tensors = load_file(str(folder / "model.safetensors"))
    (folder / "model.safetensors").unlink()
    torch.save(tensors, folder / "pytorch_model.bin")
    from_bin = softprompts(build(load_target(folder)))
    plain = softprompts(build(load_target(fixture.path / "checkpoint")))
    for ours, reference in zip(from_bin, plain, strict=True):
        torch.testing.assert_close(ours, reference, atol=0.0, rtol=0.0)
