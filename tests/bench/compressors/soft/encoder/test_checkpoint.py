"""Saving and reloading trained soft-compressor weights."""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from bench.compressors import CompressionRequest, build_compressor
from bench.compressors._api import TargetModel
from bench.compressors.soft._checkpoint_files import CheckpointFileError
from bench.compressors.soft.encoder.checkpoint import CheckpointMismatchError, save_checkpoint
from bench.compressors.soft.encoder.compressor import SoftCompressor
from bench.generation import DecoderPrompt, GenerationSettings
from bench.records import CompressedEmbeddings, CompressedKV

CONTEXTS = ("Lily saw a big red ball in the park.", "Tom and his dog went to the lake.")
VARIANT = {"500x": {}, "icae": {"variant": "500x-baseline"}}


def _trained_like(target: TargetModel, method: str, **options: object) -> SoftCompressor:
    with pytest.warns(UserWarning):
        compressor = build_compressor(method, target,
                                      {"num_mem": 3, "seed": 5, **VARIANT[method], **options})
    assert isinstance(compressor, SoftCompressor)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for param in compressor.model.encoder.trainable_parameters().values():
            param.add_(torch.randn(param.shape, generator=generator) * 0.3)
    return compressor


def _tensors(record: object) -> list[torch.Tensor]:
    if isinstance(record, CompressedKV):
        return list(record.keys + record.values)
    assert isinstance(record, CompressedEmbeddings)
    return [record.embeddings]


@pytest.mark.parametrize("layout", ["reference", "compressbench"])
@pytest.mark.parametrize("method", ["500x", "icae"])
def test_reloaded_checkpoint_gives_identical_states_and_generations(
        load_target: Callable[[str], TargetModel], method: str, layout: str,
        tmp_path: Path) -> None:
    original = _trained_like(load_target("qwen2"), method, layout=layout, max_context_tokens=40)
    save_checkpoint(original.model, tmp_path / "ckpt", original.target.name,
                    training={"lr": 1e-4})
    config = json.loads((tmp_path / "ckpt" / "soft_config.json").read_text())
    assert config["num_mem"] == 3 and config["method"] == method
    assert config["base_model"]["hidden_size"] == original.target.model.config.hidden_size  # type: ignore[union-attr]
    assert config["special_token_ids"]["eos"] == original.target.tokenizer.eos_token_id
    assert config["training"] == {"lr": 1e-4}
    assert config["layout"] == original.model.layout.as_dict()

    target = load_target("qwen2")
    reloaded = build_compressor(method, target,
                                {"checkpoint": str(tmp_path / "ckpt"), **VARIANT[method]})
    weights = (tmp_path / "ckpt" / "soft_weights.safetensors").read_bytes()
    assert reloaded.settings() == {**original.settings(), "checkpoint": str(tmp_path / "ckpt"),
                                   "checkpoint_format": "compressbench",
                                   "checkpoint_sha256": hashlib.sha256(weights).hexdigest()}
    assert reloaded.settings()["layout"] == layout
    requests = [CompressionRequest(c) for c in CONTEXTS]
    first, second = original.compress(requests), reloaded.compress(requests)
    for a, b in zip(first, second, strict=True):
        for x, y in zip(_tensors(a), _tensors(b), strict=True):
            assert torch.equal(x, y)
    prompts = [DecoderPrompt("regeneration", "", ""),
               DecoderPrompt("qa", "", "", question="Who?")]
    settings = GenerationSettings(max_new_tokens=6)
    items_a = [(c, p) for c in first for p in prompts]
    items_b = [(c, p) for c in second for p in prompts]
    assert ([o.text for o in original.generate(items_a, settings)]
            == [o.text for o in reloaded.generate(items_b, settings)])  # type: ignore[attr-defined]


def test_mismatched_checkpoint_is_a_clear_error(
        load_target: Callable[[str], TargetModel], tmp_path: Path) -> None:
    original = _trained_like(load_target("llama"), "500x")
    save_checkpoint(original.model, tmp_path / "ckpt", original.target.name)
    path = str(tmp_path / "ckpt")
    with pytest.raises(CheckpointMismatchError, match=r"num_mem=3"):
        build_compressor("500x", load_target("llama"), {"checkpoint": path, "num_mem": 4})
    with pytest.raises(CheckpointMismatchError, match="method '500x'"):
        build_compressor("icae", load_target("llama"), {"checkpoint": path, **VARIANT["icae"]})
    with pytest.raises(CheckpointMismatchError, match="layout=reference"):
        build_compressor("500x", load_target("llama"), {"checkpoint": path,
                                                        "layout": "compressbench"})
    with pytest.raises(CheckpointMismatchError, match="model_type"):
        build_compressor("500x", load_target("qwen2"), {"checkpoint": path})
    with pytest.raises(CheckpointFileError, match=r"soft_config\.json"):
        build_compressor("500x", load_target("llama"), {"checkpoint": str(tmp_path)})


@pytest.mark.parametrize("damage", ["drop", "reshape"])
def test_checkpoint_with_a_missing_or_misshapen_lora_tensor_is_refused(
        load_target: Callable[[str], TargetModel], tmp_path: Path, damage: str) -> None:
    from safetensors.torch import load_file, save_file

    original = _trained_like(load_target("llama"), "500x")
    save_checkpoint(original.model, tmp_path / "ckpt", original.target.name)
    weights = tmp_path / "ckpt" / "soft_weights.safetensors"
    state = load_file(str(weights))
    victim = sorted(key for key in state if "lora_B" in key)[-1]
    if damage == "drop":
        del state[victim]
    else:
        state[victim] = state[victim][:, :-1].contiguous()
    save_file(state, str(weights))
    with pytest.raises(CheckpointMismatchError, match=re.escape(victim)):
        build_compressor("500x", load_target("llama"), {"checkpoint": str(tmp_path / "ckpt")})


def test_config_without_a_layout_loads_as_the_compressbench_layout(
        load_target: Callable[[str], TargetModel], tmp_path: Path) -> None:
    original = _trained_like(load_target("llama"), "500x", layout="compressbench",
                             decoder_positions="restart", max_context_tokens=30)
    save_checkpoint(original.model, tmp_path / "ckpt", original.target.name)
    config_path = tmp_path / "ckpt" / "soft_config.json"
    config = json.loads(config_path.read_text())
    layout = config.pop("layout")
    config.update(max_context_tokens=layout["max_context_tokens"],
                  decoder_positions=layout["decoder_positions"])
    config_path.write_text(json.dumps(config))
    reloaded = build_compressor("500x", load_target("llama"),
                                {"checkpoint": str(tmp_path / "ckpt")})
    assert isinstance(reloaded, SoftCompressor)
    assert reloaded.model.layout == original.model.layout
    requests = [CompressionRequest(c) for c in CONTEXTS]
    for a, b in zip(original.compress(requests), reloaded.compress(requests), strict=True):
        assert isinstance(a, CompressedKV) and isinstance(b, CompressedKV)
        assert a.position_offset == b.position_offset
        assert all(torch.equal(x, y) for x, y in zip(a.keys, b.keys, strict=True))


def test_checkpoint_folder_is_written_as_one_unit(
        load_target: Callable[[str], TargetModel], tmp_path: Path) -> None:
    """The folder gets the umask's mode, and what a killed save left beside it is removed."""
    original = _trained_like(load_target("llama"), "500x")
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    (tmp_path / f".ckpt.staging-{int(done.stdout)}-abcdefgh").mkdir()
    previous = os.umask(0o027)
    try:
        save_checkpoint(original.model, tmp_path / "ckpt", original.target.name)
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "ckpt").stat().st_mode) == 0o750
    assert sorted(path.name for path in tmp_path.iterdir()) == ["ckpt"]
