"""Evaluation checkpoints written from the gathered trained tensors.

:func:`write_compressbench` writes the project's format (``soft_config.json`` +
``soft_weights.safetensors``, see :mod:`bench.compressors.soft.encoder.checkpoint`);
:func:`write_500x_repo` the 500xCompressor code's ``pytorch_model.bin`` (read by
:mod:`bench.compressors.soft.encoder.repo_checkpoint`). Both take the tensors by parameter
name of the :class:`~bench.training.module.TrainingModule`, so a sharded model never needs to be
whole.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from bench.compressors.soft.encoder import checkpoint as ckpt
from bench.compressors.soft.encoder import repo_checkpoint as repo
from bench.compressors.soft.encoder.encoder import ADAPTER_NAME
from bench.compressors.soft.encoder.model import SoftModel
from bench.substrate.atomic import atomic_path, atomic_write_json
from bench.substrate.errors import InputError

PEFT_PREFIX = "soft.encoder.peft_model."
MEMORY = "soft.encoder.memory"
TRIGGER = "soft.encoder.trigger"


def compressbench_tensors(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The tensors of ``soft_weights.safetensors`` (LoRA under peft's names, memory,
    trigger) from the gathered state."""
    lora = {key.removeprefix(PEFT_PREFIX): value for key, value in state.items()
            if key.startswith(PEFT_PREFIX)}
    renamed = _peft_names(lora)
    tensors = {f"lora.{key}": value for key, value in renamed.items()}
    tensors["memory"] = state[MEMORY]
    if TRIGGER in state:
        tensors["trigger"] = state[TRIGGER]
    return {key: value.contiguous() for key, value in tensors.items()}


def _peft_names(lora: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """peft's saved names of the adapter tensors: the parameter names without the adapter
    name (``...q_proj.lora_A.default.weight`` -> ``...q_proj.lora_A.weight``)."""
    marker = f".{ADAPTER_NAME}."
    renamed = {key.replace(marker, "."): value for key, value in lora.items()
               if "lora_" in key and marker in key}
    if len(renamed) != len(lora):
        odd = sorted(key for key in lora if marker not in key or "lora_" not in key)
        raise ValueError(f"unexpected trained tensor(s) {odd[:3]} in the encoder")
    return renamed


def write_compressbench(directory: Path, state: dict[str, torch.Tensor], model: SoftModel,
                        base_name: str, training: dict[str, Any]) -> None:
    """Write config and weights of the compressbench format into ``directory``."""
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    with atomic_path(directory / ckpt.WEIGHTS_FILE) as tmp:
        save_file(compressbench_tensors(state), str(tmp), metadata={"format": ckpt.FORMAT})
    atomic_write_json(directory / ckpt.CONFIG_FILE, ckpt.model_config(model, base_name,
                                                                      training))


def check_repo_export(method: str, targets: tuple[str, ...]) -> None:
    """The 500x-repo format stores q/v LoRA, memory and the AE embedding only."""
    if tuple(sorted(targets)) != tuple(sorted(repo.TARGET_MODULES)):
        raise InputError(f"--export-500x-repo: the 500x-repo format holds LoRA on "
                         f"{', '.join(repo.TARGET_MODULES)} only, this run trains "
                         f"{', '.join(targets)}; use --lora-targets q_proj,v_proj")


def write_500x_repo(directory: Path, state: dict[str, torch.Tensor]) -> Path:
    """Write ``pytorch_model.bin`` as the 500xCompressor code saves it (tensors only)."""
    tensors = {f"{repo.PREFIX}{key.removeprefix(PEFT_PREFIX)}": value.contiguous()
               for key, value in state.items() if key.startswith(PEFT_PREFIX)}
    tensors[repo.MEMORY_KEY] = state[MEMORY][None].contiguous()
    if TRIGGER in state:
        tensors[repo.AE_KEY] = state[TRIGGER][None].contiguous()
    directory.mkdir(parents=True, exist_ok=True)
    with atomic_path(directory / repo.WEIGHTS_FILE) as tmp:
        torch.save(tensors, tmp)
    return directory / repo.WEIGHTS_FILE
