"""The released PISCO checkpoint layout (what naver/pisco's ``PISCO.save_pretrained`` writes).

A folder holding

* ``config.json``: the ``PISCOConfig`` (``compr_rate``, ``compressor_mlp_hidden_dim``,
  ``lora_r_decoder``, ...);
* ``compressor/``: the compressor LM (``save_pretrained``, vocabulary with ``<MEM>``);
* ``connector.pt``: the MLP ``Linear, ReLU, Linear`` as a state dict (``0.*``, ``2.*``);
* ``decoder_state.pt``: the decoder tensors that differ from its base model: peft's LoRA
  matrices ``<module>.lora_{A,B}.default.weight`` on every linear layer (alpha = 2 x rank)
  and the trained copies of the embeddings and the output layer
  (``<module>.modules_to_save.default.weight``, beside ``.original_module.weight``);
* ``compressor_tokenizer/`` and ``decoder_tokenizer/`` (``<MEM>``; the decoder's also
  ``<AE>`` and the chat template).

Both ``.pt`` files are read with ``torch.load(weights_only=True)``; nothing is unpickled.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bench.compressors.soft._checkpoint_files import (
    CheckpointFileError,
    existing,
    read_json,
    read_tensors,
)
from bench.substrate.hashing import sha256_file

if TYPE_CHECKING:
    import torch

CONFIG_FILE = "config.json"
DECODER_STATE = "decoder_state.pt"
CONNECTOR = "connector.pt"
COMPRESSOR = "compressor"
COMPRESSOR_TOKENIZER = "compressor_tokenizer"
DECODER_TOKENIZER = "decoder_tokenizer"
ADAPTER = "default"
TRAINED_COPY = f".modules_to_save.{ADAPTER}.weight"
ORIGINAL = ".original_module.weight"
CONNECTOR_KEYS = ("0.weight", "0.bias", "2.weight", "2.bias")
_LORA_KEY = re.compile(rf"^(?P<module>.+)\.lora_(?P<part>[AB])\.{ADAPTER}\.weight$")
_EARLIER_RELEASE = ("adapters.pth", "decoder_first_last_layers.pth")
_CONFIG_FIELDS: dict[str, type | tuple[type, ...]] = {
    "compr_rate": int, "compressor_mlp_hidden_dim": int, "lora_r_decoder": int}


def lora_key(module: str, part: str) -> str:
    """The saved name of one LoRA matrix of ``module`` (``part``: "A" or "B")."""
    return f"{module}.lora_{part}.{ADAPTER}.weight"


@dataclass(frozen=True)
class DecoderState:
    """``decoder_state.pt``: LoRA matrices by module, and the trained embedding and output
    rows (with the module paths they belong to)."""

    lora: dict[str, tuple[torch.Tensor, torch.Tensor]]
    embeddings: dict[str, torch.Tensor]
    originals: dict[str, torch.Tensor]

    @property
    def rank(self) -> int:
        first = next(iter(self.lora.values()))
        return int(first[0].shape[0])


@dataclass(frozen=True)
class PiscoCheckpoint:
    """The files of one checkpoint folder, read and checked."""

    path: Path
    sha256: str
    compression_rate: int
    lora_r: int
    decoder: DecoderState
    connector: dict[str, torch.Tensor]

    @property
    def compressor_dir(self) -> Path:
        return self.path / COMPRESSOR

    @property
    def compressor_tokenizer_dir(self) -> Path:
        return self.path / COMPRESSOR_TOKENIZER

    @property
    def decoder_tokenizer_dir(self) -> Path:
        return self.path / DECODER_TOKENIZER

    @property
    def mlp_hidden(self) -> int:
        return int(self.connector["0.weight"].shape[0])


def folder_sha256(folder: Path) -> str:
    """SHA-256 over a folder's files (relative names and their SHA-256), in name order."""
    digest = hashlib.sha256()
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(f"{file.relative_to(folder).as_posix()}\0{sha256_file(file)}\n".encode())
    return digest.hexdigest()


def read_checkpoint(checkpoint: str) -> PiscoCheckpoint:
    """Read and check the checkpoint folder ``checkpoint``."""
    path = existing(Path(checkpoint).expanduser(),
                    hint="pass the folder PISCO's save_pretrained (or bench.train --method "
                         "pisco) wrote")
    if not path.is_dir():
        raise CheckpointFileError("is not a folder; a PISCO checkpoint is the folder "
                                  "save_pretrained writes", path)
    _refuse_earlier_release(path)
    for part in (COMPRESSOR, COMPRESSOR_TOKENIZER, DECODER_TOKENIZER):
        existing(path / part, hint="a PISCO checkpoint holds compressor/, connector.pt, "
                                   "decoder_state.pt and both tokenizers")
    config = read_json(path / CONFIG_FILE, _CONFIG_FIELDS)
    decoder = read_decoder_state(path / DECODER_STATE)
    if decoder.rank != config["lora_r_decoder"]:
        raise CheckpointFileError(f"LoRA rank {decoder.rank} in {DECODER_STATE}, "
                                  f"lora_r_decoder {config['lora_r_decoder']} here", path /
                                  CONFIG_FILE, field="lora_r_decoder")
    connector = read_connector(path / CONNECTOR, int(config["compressor_mlp_hidden_dim"]))
    return PiscoCheckpoint(path, folder_sha256(path), int(config["compr_rate"]),
                           int(config["lora_r_decoder"]), decoder, connector)


def _refuse_earlier_release(path: Path) -> None:
    found = [name for name in _EARLIER_RELEASE if (path / name).is_file()]
    if found and not (path / DECODER_STATE).is_file():
        raise CheckpointFileError(
            f"holds {', '.join(found)}: the layout of the earlier PISCO/COCOM release (the "
            "hub models such as naver/pisco-mistral, run by their own remote code), which "
            "compressor=pisco does not read", path,
            hint="give a folder in the layout naver/pisco's save_pretrained writes")


def read_decoder_state(file: Path) -> DecoderState:
    """The LoRA matrices and trained embedding rows of ``decoder_state.pt``."""
    tensors = read_tensors(file)
    lora: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in tensors.items():
        match = _LORA_KEY.match(key)
        if match:
            lora.setdefault(match["module"], {})[match["part"]] = tensor
    incomplete = [module for module, parts in lora.items() if set(parts) != {"A", "B"}]
    if incomplete:
        raise CheckpointFileError(f"LoRA matrix missing for {incomplete[0]} (needs lora_A "
                                  "and lora_B)", file)
    embeddings = {key[:-len(TRAINED_COPY)]: t for key, t in tensors.items()
                  if key.endswith(TRAINED_COPY)}
    originals = {key[:-len(ORIGINAL)]: t for key, t in tensors.items() if key.endswith(ORIGINAL)}
    if not lora:
        raise CheckpointFileError("holds no LoRA matrix (<module>.lora_A.default.weight)", file)
    if len(embeddings) != 2:
        raise CheckpointFileError(f"expected the trained copies of the embeddings and the "
                                  f"output layer (*{TRAINED_COPY}), found {len(embeddings)}",
                                  file)
    ranks = {int(parts["A"].shape[0]) for parts in lora.values()}
    if len(ranks) != 1:
        raise CheckpointFileError(f"LoRA matrices of several ranks {sorted(ranks)}", file)
    return DecoderState({m: (p["A"], p["B"]) for m, p in lora.items()}, embeddings, originals)


def read_connector(file: Path, hidden: int) -> dict[str, torch.Tensor]:
    """The connector's state dict, with the shapes of ``Linear(c, hidden), ReLU,
    Linear(hidden, d)``."""
    tensors = read_tensors(file)
    missing = [key for key in CONNECTOR_KEYS if key not in tensors]
    if missing:
        raise CheckpointFileError(f"missing tensor(s) {', '.join(missing)} of the connector "
                                  "(Linear, ReLU, Linear)", file)
    first, first_bias = tensors["0.weight"], tensors["0.bias"]
    second, second_bias = tensors["2.weight"], tensors["2.bias"]
    if (first.dim() != 2 or first.shape[0] != hidden or tuple(first_bias.shape) != (hidden,)
            or second.dim() != 2 or second.shape[1] != hidden
            or tuple(second_bias.shape) != (second.shape[0],)):
        raise CheckpointFileError(
            f"connector shapes {[tuple(tensors[k].shape) for k in CONNECTOR_KEYS]} are not "
            f"Linear(c, {hidden}), Linear({hidden}, d) (compressor_mlp_hidden_dim {hidden})",
            file)
    return {key: tensors[key] for key in CONNECTOR_KEYS}
