"""Checkpoints written by the 500xCompressor code (``checkpoint_format=500x-repo``).

A ``pytorch_model.bin`` holding a torch-saved dict (read with ``weights_only=True``):
``llama.base_model.model.<module>.lora_{A,B}.default.weight`` for every layer's ``q_proj`` and
``v_proj`` (A ``[r, in]``, B ``[out, r]``), ``memory_embeddings`` ``[1, k, hidden]`` and, for
the ICAE baseline's regeneration checkpoints, ``ae_embedding`` ``[1, 1, hidden]``. The LoRA
rank comes from the tensors; alpha and dropout are not stored (the code fixes 32 and 0.05).
Other ``llama.*`` entries (frozen base weights of a full Trainer dump) are ignored, as the
reference loader ignores them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from bench.compressors.soft._checkpoint_files import CheckpointFileError, existing, read_tensors
from bench.compressors.soft.encoder.checkpoint import REPO_WEIGHTS_FILE, listed
from bench.compressors.soft.encoder.encoder import LoraSettings
from bench.substrate.errors import InputError

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from bench.compressors.soft.encoder.model import SoftModel

WEIGHTS_FILE = REPO_WEIGHTS_FILE
PREFIX = "llama."
TARGET_MODULES = ("q_proj", "v_proj")
LORA_ALPHA = 32
LORA_DROPOUT = 0.05
MEMORY_KEY = "memory_embeddings"
AE_KEY = "ae_embedding"


class RepoCheckpointError(InputError):
    """A 500x-repo checkpoint lacks a tensor or does not fit the base model."""


def weights_file(path: Path) -> Path:
    """The ``.bin`` file of ``path`` (the file itself, or ``pytorch_model.bin`` inside it)."""
    path = existing(Path(path))
    file = path / WEIGHTS_FILE if path.is_dir() else path
    if not file.is_file():
        raise CheckpointFileError(f"no {WEIGHTS_FILE} (a 500x-repo checkpoint is that file or a "
                                  "directory holding it)", path)
    return file


@dataclass(frozen=True)
class RepoCheckpoint:
    """The tensors of one 500x-repo checkpoint file."""

    file: Path
    tensors: dict[str, torch.Tensor]

    @property
    def num_mem(self) -> int:
        return int(self.memory.shape[1])

    @property
    def memory(self) -> torch.Tensor:
        return self.tensors[MEMORY_KEY]

    @property
    def has_ae_embedding(self) -> bool:
        return AE_KEY in self.tensors

    def lora_rank(self) -> int:
        """The rank of the first LoRA A tensor (every tensor's shape is checked later)."""
        for key in sorted(self.tensors):
            if key.endswith(".lora_A.default.weight"):
                return int(self.tensors[key].shape[0])
        raise RepoCheckpointError(f"{self.file}: no LoRA tensors (keys ending in "
                                  "'.lora_A.default.weight')")

    def lora_settings(self, alpha: int | None, dropout: float | None) -> LoraSettings:
        return LoraSettings(r=self.lora_rank(), alpha=LORA_ALPHA if alpha is None else alpha,
                            dropout=LORA_DROPOUT if dropout is None else dropout,
                            target_modules=TARGET_MODULES)


def read_repo_checkpoint(path: Path) -> RepoCheckpoint:
    """Load the tensors of a 500x-repo checkpoint (``weights_only``; no base weights kept)."""
    file = weights_file(path)
    tensors = read_tensors(file, _is_trained)
    if MEMORY_KEY not in tensors:
        raise RepoCheckpointError(f"{file}: tensor {MEMORY_KEY!r} is missing")
    if tensors[MEMORY_KEY].dim() != 3 or tensors[MEMORY_KEY].shape[0] != 1:
        raise RepoCheckpointError(f"{file}: tensor {MEMORY_KEY!r} has shape "
                                  f"{tuple(tensors[MEMORY_KEY].shape)}, expected (1, k, hidden)")
    return RepoCheckpoint(file, tensors)


def _is_trained(key: str) -> bool:
    return key in (MEMORY_KEY, AE_KEY) or (key.startswith(PREFIX) and ".lora_" in key)


def expected_shapes(model: PreTrainedModel, checkpoint: RepoCheckpoint, method: str
                    ) -> dict[str, tuple[int, ...]]:
    """Every tensor ``method`` reads from ``checkpoint`` with the shape ``model`` needs."""
    rank, hidden = checkpoint.lora_rank(), int(model.config.hidden_size)
    shapes: dict[str, tuple[int, ...]] = {MEMORY_KEY: (1, checkpoint.num_mem, hidden)}
    for name, module in model.named_modules():
        if name.rsplit(".", 1)[-1] in TARGET_MODULES and isinstance(module, nn.Linear):
            stem = f"{PREFIX}base_model.model.{name}"
            shapes[f"{stem}.lora_A.default.weight"] = (rank, module.in_features)
            shapes[f"{stem}.lora_B.default.weight"] = (module.out_features, rank)
    if len(shapes) == 1:
        raise RepoCheckpointError(f"{checkpoint.file}: the base model has no plain "
                                  f"{'/'.join(TARGET_MODULES)} linear layers to adapt (a model "
                                  "that already carries a LoRA adapter needs a fresh copy)")
    if method == "icae" and checkpoint.has_ae_embedding:
        shapes[AE_KEY] = (1, 1, hidden)
    return shapes


def check_repo_checkpoint(model: PreTrainedModel, checkpoint: RepoCheckpoint,
                          method: str) -> None:
    """Raise :class:`RepoCheckpointError` naming every missing, unexpected or misshapen tensor."""
    shapes = expected_shapes(model, checkpoint, method)
    where = checkpoint.file
    missing = sorted(set(shapes) - set(checkpoint.tensors))
    if missing:
        raise RepoCheckpointError(f"{where}: missing tensor(s) {listed(missing)}")
    unexpected = sorted(set(checkpoint.tensors) - set(shapes))
    if unexpected:
        raise RepoCheckpointError(f"{where}: tensor(s) {listed(unexpected)} are not read by "
                                  f"method {method!r}; is this a checkpoint of another method?")
    for key, shape in shapes.items():
        found = tuple(checkpoint.tensors[key].shape)
        if found != shape:
            raise RepoCheckpointError(f"{where}: tensor {key!r} has shape {found}, but the base "
                                      f"model needs {shape}")


def load_repo_weights(model: SoftModel, checkpoint: RepoCheckpoint) -> None:
    """Copy the checked tensors into ``model`` (LoRA by peft name, memory, AE embedding)."""
    encoder = model.encoder
    parameters = dict(encoder.peft_model.named_parameters())
    with torch.no_grad():
        for key, value in checkpoint.tensors.items():
            if key.startswith(PREFIX):
                parameters[key.removeprefix(PREFIX)].copy_(value)
        encoder.memory.copy_(checkpoint.memory[0])
        if checkpoint.has_ae_embedding and encoder.trigger is not None:
            encoder.trigger.copy_(checkpoint.tensors[AE_KEY][0])
