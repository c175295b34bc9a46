"""Checkpoints of trained soft compressors: safetensors weights + a JSON config.

This is the ``compressbench`` checkpoint format (the 500xCompressor code's own files are read
by :mod:`.repo_checkpoint`). A checkpoint directory holds

* ``soft_config.json`` - method (and ICAE variant), k, the input layout (:mod:`._layout`), base
  model identity (name, revision, architecture and sizes), tokenizer special-token ids, LoRA
  settings and every training hyper-parameter (configs without a layout used compressbench);
* ``soft_weights.safetensors`` - ``memory`` ``[k, hidden]``, ``trigger`` (ICAE) and the LoRA
  tensors under ``lora.<peft name>``;
* optionally the training state (see :mod:`bench.training.state`) for resuming.

Directories are written as one unit (:func:`bench.substrate.atomic.atomic_directory`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from bench.compressors.soft._checkpoint_files import (
    CheckpointFileError,
    FieldTypes,
    check_fields,
    existing,
    read_json,
    read_tensors,
)
from bench.compressors.soft.encoder.encoder import ADAPTER_NAME, LoraSettings
from bench.compressors.soft.encoder.layout import Layout
from bench.substrate.atomic import atomic_directory, atomic_path, atomic_write_json
from bench.substrate.errors import InputError

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from bench.compressors.soft.encoder.model import SoftModel

CONFIG_FILE = "soft_config.json"
WEIGHTS_FILE = "soft_weights.safetensors"
#: The weights file the 500xCompressor code writes (read by :mod:`.repo_checkpoint`).
REPO_WEIGHTS_FILE = "pytorch_model.bin"
FORMAT = "compressbench-soft/1"
FORMATS = ("compressbench", "500x-repo")
ICAE_VARIANT = "500x-baseline"
#: Fields every ``soft_config.json`` has, with their JSON types.
CONFIG_FIELDS: dict[str, FieldTypes] = {
    "method": str, "num_mem": int, "seed": int, "special_token_ids": dict,
    "base_model.name": str, "base_model.model_type": str, "base_model.hidden_size": int,
    "base_model.num_hidden_layers": int, "base_model.vocab_size": int,
    "lora.r": int, "lora.alpha": int, "lora.dropout": float, "lora.target_modules": list,
}
LAYOUT_FIELDS: dict[str, FieldTypes] = {
    "layout.name": str, "layout.context_length": int, "layout.max_context_tokens": int,
    "layout.max_qa_len": int, "layout.loss_on_padding": bool,
}
#: Configs written before layouts were recorded (compressbench layout).
OLD_LAYOUT_FIELDS: dict[str, FieldTypes] = {"max_context_tokens": int}


class CheckpointMismatchError(InputError):
    """The checkpoint was trained for another method, k or base model."""


def base_identity(model: PreTrainedModel, name: str) -> dict[str, Any]:
    """What identifies the base model a checkpoint belongs to."""
    config = model.config
    return {
        "name": name,
        "revision": getattr(config, "_commit_hash", None),
        "model_type": config.model_type,
        "hidden_size": config.hidden_size,
        "num_hidden_layers": config.num_hidden_layers,
        "vocab_size": config.vocab_size,
    }


def model_config(model: SoftModel, base_name: str, training: dict[str, Any] | None = None
                 ) -> dict[str, Any]:
    """The JSON config recorded with the weights of ``model``."""
    lora = model.lora
    config = {
        "format": FORMAT,
        "method": model.method,
        "num_mem": model.num_mem,
        "seed": model.seed,
        "layout": model.layout.as_dict(),
        "base_model": base_identity(model.base, base_name),
        "special_token_ids": model.ids.as_dict(),
        "lora": {"r": lora.r, "alpha": lora.alpha, "dropout": lora.dropout,
                 "target_modules": list(lora.target_modules)},
        "training": training or {},
    }
    if model.method == "icae":
        config["variant"] = ICAE_VARIANT
    return config


def weights_state(model: SoftModel) -> dict[str, torch.Tensor]:
    """The trained tensors of ``model`` (LoRA, memory, trigger), detached on CPU."""
    from peft import get_peft_model_state_dict

    lora = get_peft_model_state_dict(model.encoder.peft_model, adapter_name=ADAPTER_NAME)
    state = {f"lora.{key}": value for key, value in lora.items()}
    state["memory"] = model.encoder.memory
    if model.encoder.trigger is not None:
        state["trigger"] = model.encoder.trigger
    return {key: value.detach().cpu().contiguous() for key, value in state.items()}


def write_weights(model: SoftModel, directory: Path, config: dict[str, Any]) -> None:
    """Write config and weights into an existing directory (atomic per file)."""
    from safetensors.torch import save_file

    with atomic_path(directory / WEIGHTS_FILE) as tmp:
        save_file(weights_state(model), str(tmp), metadata={"format": FORMAT})
    atomic_write_json(directory / CONFIG_FILE, config)


def save_checkpoint(model: SoftModel, path: Path, base_name: str,
                    training: dict[str, Any] | None = None) -> Path:
    """Save ``model``'s trained weights and config as the directory ``path``."""
    with atomic_directory(path) as tmp:
        write_weights(model, tmp, model_config(model, base_name, training))
    return path


def read_config(path: Path) -> dict[str, Any]:
    """The config of checkpoint directory ``path`` (clear error when it is not one)."""
    config_path = existing(Path(path)) / CONFIG_FILE
    if not config_path.is_file():
        raise CheckpointFileError(f"not a soft-compressor checkpoint: {CONFIG_FILE} is missing",
                                  path)
    config = read_json(config_path, {"format": str})
    if config["format"] != FORMAT:
        raise CheckpointFileError(f"is {config['format']!r}, expected {FORMAT!r}", config_path,
                                  field="format")
    check_fields(config, CONFIG_FIELDS, config_path)
    old_layout = "layout" not in config and "max_context_tokens" in config
    check_fields(config, OLD_LAYOUT_FIELDS if old_layout else LAYOUT_FIELDS, config_path)
    return config


def detect_format(path: Path) -> str:
    """``compressbench`` (a directory with ``soft_config.json``) or ``500x-repo`` (a ``.bin``
    file, or a directory with ``pytorch_model.bin``)."""
    path = existing(Path(path))
    if path.is_dir() and (path / CONFIG_FILE).is_file():
        return "compressbench"
    if (path.is_file() and path.suffix == ".bin") or (path.is_dir()
                                                      and (path / REPO_WEIGHTS_FILE).is_file()):
        return "500x-repo"
    raise CheckpointFileError(f"not a soft-compressor checkpoint: expected a directory with "
                              f"{CONFIG_FILE} (compressbench) or {REPO_WEIGHTS_FILE} (500x-repo), "
                              "or a .bin file", path, hint="set checkpoint_format to force one")


def layout_of(config: dict[str, Any]) -> Layout:
    """The layout recorded in a checkpoint config (configs without one used compressbench)."""
    if "layout" in config:
        return Layout.from_dict(config["layout"])
    return Layout(name="compressbench", max_context_tokens=int(config["max_context_tokens"]),
                  decoder_positions=str(config.get("decoder_positions", "continue")))


def lora_settings(config: dict[str, Any]) -> LoraSettings:
    """The LoRA settings recorded in a checkpoint config."""
    lora = config["lora"]
    return LoraSettings(r=int(lora["r"]), alpha=int(lora["alpha"]),
                        dropout=float(lora["dropout"]),
                        target_modules=tuple(lora["target_modules"]))


def check_compatible(config: dict[str, Any], path: Path, method: str, model: PreTrainedModel,
                     base_name: str, num_mem: int | None) -> None:
    """Raise :class:`CheckpointMismatchError` when the checkpoint does not fit this setup."""
    where = Path(path) / CONFIG_FILE
    if config["method"] != method:
        raise CheckpointMismatchError(f"{where}: trained for method {config['method']!r}, "
                                      f"not {method!r}")
    if method == "icae" and config.get("variant", ICAE_VARIANT) != ICAE_VARIANT:
        raise CheckpointMismatchError(f"{where}: icae variant {config['variant']!r}, not "
                                      f"{ICAE_VARIANT!r}")
    if num_mem is not None and int(config["num_mem"]) != num_mem:
        raise CheckpointMismatchError(f"{where}: trained with num_mem={config['num_mem']}, "
                                      f"but num_mem={num_mem} was requested")
    recorded = config["base_model"]
    current = base_identity(model, base_name)
    for key in ("model_type", "hidden_size", "num_hidden_layers", "vocab_size"):
        if recorded[key] != current[key]:
            raise CheckpointMismatchError(
                f"{where}: base model field {key} is {recorded[key]!r}, but the loaded base "
                f"model {base_name!r} has {current[key]!r}")
    if Path(str(recorded["name"])).name != Path(base_name).name:
        raise CheckpointMismatchError(
            f"{where}: trained on base model {recorded['name']!r}, but the loaded base model "
            f"is {base_name!r}")


def load_weights(model: SoftModel, path: Path) -> None:
    """Load trained weights into ``model``: every tensor it trains must be there, in shape."""
    from peft import get_peft_model_state_dict, set_peft_model_state_dict

    file = Path(path) / WEIGHTS_FILE
    state = read_tensors(file, device=str(model.device))
    needed = {f"lora.{key}": value for key, value in
              get_peft_model_state_dict(model.encoder.peft_model,
                                        adapter_name=ADAPTER_NAME).items()}
    needed["memory"] = model.encoder.memory
    if model.encoder.trigger is not None:
        needed["trigger"] = model.encoder.trigger
    _check_tensors(file, state, needed)
    with torch.no_grad():
        model.encoder.memory.copy_(state.pop("memory"))
        trigger = state.pop("trigger", None)
        if trigger is not None and model.encoder.trigger is not None:
            model.encoder.trigger.copy_(trigger)
    lora = {key.removeprefix("lora."): value for key, value in state.items()}
    set_peft_model_state_dict(model.encoder.peft_model, lora, adapter_name=ADAPTER_NAME)


def _check_tensors(file: Path, state: dict[str, torch.Tensor],
                   needed: dict[str, torch.Tensor]) -> None:
    missing = sorted(set(needed) - set(state))
    if missing:
        raise CheckpointMismatchError(f"{file}: missing tensor(s) {listed(missing)}")
    unexpected = sorted(set(state) - set(needed))
    if unexpected:
        raise CheckpointMismatchError(f"{file}: unexpected tensor(s) {listed(unexpected)}")
    for key, value in needed.items():
        if tuple(state[key].shape) != tuple(value.shape):
            raise CheckpointMismatchError(f"{file}: tensor {key} has shape "
                                          f"{tuple(state[key].shape)}, expected "
                                          f"{tuple(value.shape)}")


def listed(keys: list[str], shown: int = 4) -> str:
    """The first ``shown`` keys, quoted, and how many more there are."""
    text = ", ".join(repr(key) for key in keys[:shown])
    return text + (f" and {len(keys) - shown} more" if len(keys) > shown else "")
