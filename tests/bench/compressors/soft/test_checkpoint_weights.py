"""What every soft-checkpoint format refuses: values, damaged files, bad JSON, missing paths.

Each refusal must be one line naming the file (and the tensor or field) that the command
lines print without a traceback (:func:`bench.lmeval.cli_errors.user_facing`).
"""

from __future__ import annotations

import builtins
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

from bench.compressors import build_compressor
from bench.compressors._api import TargetModel
from bench.compressors.soft._torch import input_embedding
from bench.compressors.soft.autocompressor.checkpoint import SUMMARY_WEIGHT
from bench.compressors.soft.encoder import repo_checkpoint as repo
from bench.compressors.soft.encoder.checkpoint import CONFIG_FILE, save_checkpoint
from bench.compressors.soft.icae_v2.checkpoint import MEMORY_KEY, expected_shapes
from bench.compressors.soft.icae_v2.model import base_shape
from bench.lmeval.cli_errors import user_facing
from bench.substrate.errors import one_line

Build = Callable[[], object]


@dataclass
class Checkpoint:
    """A small checkpoint of one format: its weights file, a tensor it reads, how to load it."""

    file: Path
    tensor: str
    build: Build


def shown_as_one_line(error: BaseException, *parts: str) -> str:
    """The line the command lines print for ``error``; it must contain every part."""
    assert user_facing(error) is error, f"would print a traceback: {error!r}"
    line = one_line(error)
    assert str(error) == line
    for part in parts:
        assert part in line
    return line


def refusal(build: Build) -> BaseException:
    with pytest.raises(ValueError) as caught:
        build()
    return caught.value


def save_tensors(tensors: dict[str, torch.Tensor], file: Path) -> None:
    if file.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in tensors.items()}, str(file),
                  metadata={"format": "pt"})
    else:
        torch.save(tensors, file)


def load_tensors(file: Path) -> dict[str, torch.Tensor]:
    if file.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(file))
    loaded: dict[str, torch.Tensor] = torch.load(file, weights_only=True)
    return loaded


def compressbench(target: Callable[[], TargetModel], folder: Path) -> Checkpoint:
    with pytest.warns(UserWarning):
        fresh = build_compressor("500x", target(), {"num_mem": 2})
    save_checkpoint(fresh.model, folder, fresh.target.name)  # type: ignore[attr-defined]
    return Checkpoint(folder / "soft_weights.safetensors", "memory",
                      lambda: build_compressor("500x", target(), {"checkpoint": str(folder)}))


def repo_bin(target: Callable[[], TargetModel], folder: Path) -> Checkpoint:
    base = target().model
    assert base is not None
    hidden, rank = int(base.config.hidden_size), 4
    tensors = {repo.MEMORY_KEY: torch.randn(1, 2, hidden)}
    for name, module in base.named_modules():
        if name.rsplit(".", 1)[-1] in repo.TARGET_MODULES and isinstance(module, torch.nn.Linear):
            stem = f"{repo.PREFIX}base_model.model.{name}"
            tensors[f"{stem}.lora_A.default.weight"] = torch.randn(rank, module.in_features)
            tensors[f"{stem}.lora_B.default.weight"] = torch.randn(module.out_features, rank)
    folder.mkdir()
    file = folder / repo.WEIGHTS_FILE
    torch.save(tensors, file)
    victim = sorted(key for key in tensors if "lora_B" in key)[0]
    return Checkpoint(file, victim,
                      lambda: build_compressor("500x", target(), {"checkpoint": str(file)}))


def icae_v2(target: Callable[[], TargetModel], folder: Path) -> Checkpoint:
    base = target().model
    assert base is not None
    shape = base_shape(base)
    tensors = {key: torch.randn(size) * 0.01 for key, size in expected_shapes(shape, 4).items()}
    tensors[MEMORY_KEY] = torch.randn(2 + 3, shape.hidden_size)
    folder.mkdir()
    file = folder / "icae.safetensors"
    save_tensors(tensors, file)
    return Checkpoint(file, MEMORY_KEY,
                      lambda: build_compressor("icae", target(), {"checkpoint": str(file)}))


def autocompressor(source: Path, folder: Path, weights: str) -> Checkpoint:
    """The tiny model as an AutoCompressor whose weights are ``weights`` (.safetensors or .bin)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    shutil.copytree(source, folder)
    config = json.loads((folder / "config.json").read_text("utf-8"))
    config.update(summary_length=2, accumulate_summary=True)
    (folder / "config.json").write_text(json.dumps(config), "utf-8")
    tensors = load_tensors(folder / "model.safetensors")
    tensors[SUMMARY_WEIGHT] = torch.randn(2, config["hidden_size"])
    (folder / "model.safetensors").unlink()
    save_tensors(tensors, folder / weights)
    model = AutoModelForCausalLM.from_pretrained(str(folder)).eval()  # type: ignore[no-untyped-call]
    target = TargetModel(str(folder), AutoTokenizer.from_pretrained(str(folder)), model)
    return Checkpoint(folder / weights, SUMMARY_WEIGHT,
                      lambda: build_compressor("autocompressor", target, {}))


FORMATS = ("compressbench", "500x-repo", "icae-v2", "autocompressor-safetensors",
           "autocompressor-bin")


@pytest.fixture()
def make_checkpoint(load_target: Callable[[str], TargetModel], tiny_dirs: dict[str, Path],
                    tmp_path: Path) -> Callable[[str], Checkpoint]:
    def make(kind: str) -> Checkpoint:
        def llama() -> TargetModel:
            return load_target("llama")

        folder = tmp_path / "checkpoint"
        if kind == "compressbench":
            return compressbench(llama, folder)
        if kind == "500x-repo":
            return repo_bin(llama, folder)
        if kind == "icae-v2":
            return icae_v2(llama, folder)
        weights = "model.safetensors" if kind.endswith("safetensors") else "pytorch_model.bin"
        return autocompressor(tiny_dirs["llama"], folder, weights)

    return make


def poisoned(tensor: torch.Tensor, poison: str) -> torch.Tensor:
    if poison == "int64":
        return torch.zeros(tensor.shape, dtype=torch.int64)
    if poison == "bool":
        return torch.ones(tensor.shape, dtype=torch.bool)
    changed = tensor.clone()
    changed.view(-1)[1] = float(poison)
    return changed


@pytest.mark.parametrize("poison", ["nan", "inf", "-inf", "int64", "bool"])
@pytest.mark.parametrize("kind", FORMATS)
def test_a_tensor_that_is_not_finite_floats_is_refused_by_name(
        make_checkpoint: Callable[[str], Checkpoint], kind: str, poison: str) -> None:
    checkpoint = make_checkpoint(kind)
    tensors = load_tensors(checkpoint.file)
    tensors[checkpoint.tensor] = poisoned(tensors[checkpoint.tensor], poison)
    save_tensors(tensors, checkpoint.file)
    line = shown_as_one_line(refusal(checkpoint.build), str(checkpoint.file),
                             repr(checkpoint.tensor))
    wrong_dtype = poison in ("int64", "bool")
    assert ("floating-point" in line) == wrong_dtype
    assert ("holds 1 NaN or infinite value" in line) != wrong_dtype


@pytest.mark.parametrize("damage", ["empty", "truncated"])
@pytest.mark.parametrize("kind", FORMATS)
def test_an_empty_or_truncated_weights_file_is_one_line(
        make_checkpoint: Callable[[str], Checkpoint], kind: str, damage: str) -> None:
    checkpoint = make_checkpoint(kind)
    data = checkpoint.file.read_bytes()
    checkpoint.file.write_bytes(b"" if damage == "empty" else data[: len(data) // 2])
    line = shown_as_one_line(refusal(checkpoint.build), str(checkpoint.file))
    problem = line.removeprefix(f"{checkpoint.file}: ")
    assert ("empty" in problem) == (damage == "empty")


class _Planted:
    """Unpickling this creates ``marker``: what a planted payload would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (builtins.open, (str(self.marker), "w"))


@pytest.mark.parametrize("kind", ["500x-repo", "autocompressor-bin"])
def test_a_bin_holding_objects_is_not_loaded_and_says_it_holds_code(
        make_checkpoint: Callable[[str], Checkpoint], kind: str, tmp_path: Path) -> None:
    checkpoint = make_checkpoint(kind)
    marker = tmp_path / "payload-ran"
    tensors: dict[str, Any] = dict(load_tensors(checkpoint.file))
    tensors["planted"] = _Planted(marker)
    torch.save(tensors, checkpoint.file)
    line = shown_as_one_line(refusal(checkpoint.build), str(checkpoint.file), "code",
                             "not loaded")
    assert "weights_only" not in line
    assert not marker.exists()


@pytest.mark.parametrize("forced", [{}, {"checkpoint_format": "500x-repo"},
                                    {"checkpoint_format": "compressbench"}])
def test_a_checkpoint_path_that_does_not_exist_is_one_line(
        load_target: Callable[[str], TargetModel], tmp_path: Path,
        forced: dict[str, str]) -> None:
    missing = tmp_path / "no-such-checkpoint"
    error = refusal(lambda: build_compressor(
        "500x", load_target("llama"), {"checkpoint": str(missing), **forced}))
    shown_as_one_line(error, str(missing), "does not exist")


def _edited(config: dict[str, Any], field: str, value: object) -> dict[str, Any]:
    """``config`` with dotted ``field`` set to ``value``, or removed when it is None."""
    *parents, last = field.split(".")
    inner = config
    for parent in parents:
        inner = inner[parent]
    if value is None:
        del inner[last]
    else:
        inner[last] = value
    return config


@pytest.mark.parametrize(("field", "value"), [
    ("method", None), ("num_mem", None), ("lora.r", None), ("base_model", None),
    ("base_model.hidden_size", None), ("special_token_ids", None), ("layout", None),
    ("layout.max_qa_len", None), ("num_mem", "four"), ("lora.target_modules", "q_proj"),
])
def test_a_soft_config_that_lacks_a_field_names_it(
        make_checkpoint: Callable[[str], Checkpoint], field: str, value: str | None) -> None:
    checkpoint = make_checkpoint("compressbench")
    config_file = checkpoint.file.parent / CONFIG_FILE
    config = json.loads(config_file.read_text("utf-8"))
    config_file.write_text(json.dumps(_edited(config, field, value)), "utf-8")
    shown_as_one_line(refusal(checkpoint.build), str(config_file), repr(field))


@pytest.mark.parametrize("text", [b"[1, 2]", b"\xff\xfe{}", b'"compressbench-soft/1"'])
def test_a_soft_config_that_is_not_a_json_object_is_one_line(
        make_checkpoint: Callable[[str], Checkpoint], text: bytes) -> None:
    checkpoint = make_checkpoint("compressbench")
    config_file = checkpoint.file.parent / CONFIG_FILE
    config_file.write_bytes(text)
    shown_as_one_line(refusal(checkpoint.build), str(config_file))


@pytest.mark.parametrize("index", ['{"weight_map": ', '{"metadata": {}}', '{"weight_map": []}'])
def test_an_autocompressor_weight_index_that_is_not_valid_is_one_line(
        make_checkpoint: Callable[[str], Checkpoint], index: str) -> None:
    checkpoint = make_checkpoint("autocompressor-safetensors")
    index_file = checkpoint.file.parent / "model.safetensors.index.json"
    index_file.write_text(index, "utf-8")
    shown_as_one_line(refusal(checkpoint.build), str(index_file))


def test_an_autocompressor_config_that_is_not_json_is_one_line(tiny_dirs: dict[str, Path],
                                                              tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    from bench.hub import load_from_hub

    folder = tmp_path / "autocompressor"
    shutil.copytree(tiny_dirs["llama"], folder)
    (folder / "config.json").write_text('{"model_type": "llama", "summary_length": ', "utf-8")
    error = refusal(lambda: load_from_hub(
        lambda: AutoModelForCausalLM.from_pretrained(str(folder)),  # type: ignore[no-untyped-call]
        str(folder), "target model", "pretrained= in --model_args"))
    shown_as_one_line(error, str(folder), "config.json")


@pytest.mark.parametrize("poison", ["nan", "inf"])
def test_a_gist_token_embedding_that_is_not_finite_is_refused(
        load_target: Callable[[str], TargetModel], poison: str) -> None:
    target = load_target("llama")
    assert target.model is not None
    target.tokenizer.add_tokens(["<GIST>"], special_tokens=True)
    gist_id = target.tokenizer.convert_tokens_to_ids("<GIST>")
    target.model.resize_token_embeddings(len(target.tokenizer))
    with torch.no_grad():
        input_embedding(target.model).weight[gist_id, 0] = float(poison)
    line = shown_as_one_line(refusal(lambda: build_compressor("gist", target, {})))
    assert f"id {gist_id}" in line and target.name in line


@pytest.mark.parametrize("dropout", ["1.5", "-0.1"])
def test_a_lora_dropout_out_of_range_is_one_line(
        make_checkpoint: Callable[[str], Checkpoint], load_target: Callable[[str], TargetModel],
        dropout: str) -> None:
    checkpoint = make_checkpoint("500x-repo")
    error = refusal(lambda: build_compressor(
        "500x", load_target("llama"), {"checkpoint": str(checkpoint.file),
                                       "lora_dropout": dropout}))
    shown_as_one_line(error, "lora_dropout", "[0, 1]")
