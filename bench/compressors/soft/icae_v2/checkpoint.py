"""Reading ICAE v2 checkpoints in the released format (``sggetao/icae`` safetensors files).

A file holds, for every decoder layer ``i`` and target ``t`` in (q_proj, v_proj),
``icae.base_model.model.model.layers.{i}.self_attn.{t}.lora_{A,B}.default.weight`` and
``memory_token_embed.weight`` ``(k + 3, hidden)``. Other tensors (a full training state) are
ignored, as the published inference code does. Only the needed tensors are read.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bench.compressors.soft._checkpoint_files import existing, read_tensors
from bench.substrate.errors import InputError
from bench.substrate.hashing import sha256_file

if TYPE_CHECKING:
    import torch

LORA_TARGETS = ("q_proj", "v_proj")
MEMORY_KEY = "memory_token_embed.weight"
_LORA_KEY = ("icae.base_model.model.model.layers.{layer}.self_attn.{target}"
             ".lora_{part}.default.weight")


class IcaeV2CheckpointError(InputError):
    """A checkpoint that cannot serve the base model (missing tensors, wrong shapes)."""


def lora_key(layer: int, target: str, part: str) -> str:
    """Released name of one LoRA matrix (``part`` is "A" or "B")."""
    return _LORA_KEY.format(layer=layer, target=target, part=part)


@dataclass(frozen=True)
class BaseShape:
    """What a checkpoint must fit: layers, hidden size and each target's output size."""

    num_layers: int
    hidden_size: int
    out_features: dict[str, int]


@dataclass(frozen=True)
class IcaeV2Checkpoint:
    """The tensors of one released checkpoint, checked against a base model."""

    path: Path
    sha256: str
    lora: dict[str, torch.Tensor]
    memory: torch.Tensor
    rank: int

    @property
    def num_mem(self) -> int:
        return int(self.memory.shape[0]) - 3


def resolve_checkpoint_file(checkpoint: str) -> Path:
    """The ``.safetensors`` file named by ``checkpoint``: the file, or the only one in a folder."""
    path = existing(Path(checkpoint).expanduser(),
                    hint="pass the path of a downloaded file such as sggetao/icae's "
                         "mistral_7b_ft_icae.safetensors")
    if path.is_file():
        if path.suffix != ".safetensors":
            raise IcaeV2CheckpointError(f"{path}: ICAE v2 checkpoints are .safetensors files "
                                        "(e.g. mistral_7b_ft_icae.safetensors)")
        return path
    if path.is_dir():
        files = sorted(path.glob("*.safetensors"))
        if len(files) == 1:
            return files[0]
        found = ", ".join(f.name for f in files) or "none"
        raise IcaeV2CheckpointError(f"{path}: expected exactly one .safetensors file, found "
                                    f"{found}; pass checkpoint=<the file> instead")
    raise IcaeV2CheckpointError(f"{path}: neither a file nor a folder")


def expected_shapes(base: BaseShape, rank: int) -> dict[str, tuple[int, int]]:
    """Every needed LoRA tensor with its shape for LoRA rank ``rank``."""
    shapes: dict[str, tuple[int, int]] = {}
    for layer in range(base.num_layers):
        for target in LORA_TARGETS:
            shapes[lora_key(layer, target, "A")] = (rank, base.hidden_size)
            shapes[lora_key(layer, target, "B")] = (base.out_features[target], rank)
    return shapes


def read_checkpoint(checkpoint: str, base: BaseShape) -> IcaeV2Checkpoint:
    """Read and check the LoRA and memory tensors of ``checkpoint`` for ``base``."""
    path = resolve_checkpoint_file(checkpoint)
    needed = [MEMORY_KEY, *expected_shapes(base, 1)]
    tensors = read_tensors(path, set(needed).__contains__)
    missing = [key for key in needed if key not in tensors]
    if missing:
        raise IcaeV2CheckpointError(f"{path}: missing tensor(s) {', '.join(missing)}; "
                                    "this is not a complete ICAE v2 checkpoint for the model")
    rank = int(tensors[lora_key(0, LORA_TARGETS[0], "A")].shape[0])
    _check_shapes(path, tensors, expected_shapes(base, rank), base.hidden_size)
    memory = tensors.pop(MEMORY_KEY)
    return IcaeV2Checkpoint(path, sha256_file(path), tensors, memory, rank)


def _check_shapes(path: Path, tensors: dict[str, torch.Tensor],
                  shapes: dict[str, tuple[int, int]], hidden_size: int) -> None:
    wrong = [f"{key} {tuple(tensors[key].shape)} (expected {shape})"
             for key, shape in shapes.items() if tuple(tensors[key].shape) != shape]
    memory = tuple(tensors[MEMORY_KEY].shape)
    if len(memory) != 2 or memory[1] != hidden_size or memory[0] < 4:
        wrong.append(f"{MEMORY_KEY} {memory} (expected (k + 3, {hidden_size}), k >= 1)")
    if wrong:
        raise IcaeV2CheckpointError(f"{path}: tensor(s) with shapes that do not fit the base "
                                    f"model: {'; '.join(wrong)}")
