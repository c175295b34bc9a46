"""What an AutoCompressor checkpoint adds to a plain causal LM, read from the model's folder.

An AutoCompressor (Chevalier et al. 2023) is a fine-tuned causal LM whose ``config.json`` also
holds ``summary_length`` and ``accumulate_summary`` and whose weights add
``embed_summary.weight`` ``[summary_length, hidden]``: the input vectors of the summary
tokens. transformers loads such a checkpoint as the plain ``*ForCausalLM`` of its
``model_type`` and leaves that tensor aside, so it is read here from the checkpoint's weight
files: a local folder, or the Hugging Face cache for a hub id (never downloaded here).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from bench.compressors.soft._checkpoint_files import (
    CheckpointFileError,
    read_json,
    read_tensors,
)
from bench.substrate.errors import InputError
from bench.substrate.hashing import sha256_file

SUMMARY_WEIGHT = "embed_summary.weight"
#: ``config.json`` field of the mean segment length a ``bench.train`` run trained on.
TRAINING_SEGMENT_LENGTH = "training_segment_length"
#: Weight files in the order they are looked for; an index names the shard holding a tensor.
WEIGHT_FILES = ("model.safetensors.index.json", "model.safetensors",
                "pytorch_model.bin.index.json", "pytorch_model.bin")
_HUB_BLOB = re.compile(r"[0-9a-f]{64}")


class AutoCompressorCheckpointError(InputError):
    """The target model is not a usable AutoCompressor checkpoint."""


@dataclass(frozen=True)
class SummarySpec:
    """The summary-token parameters of an AutoCompressor.

    ``embeddings``: the summary tokens' input vectors ``[summary_length, hidden]``;
    ``accumulate``: each new segment's summaries are appended to the earlier ones (else they
    replace them); ``weight_files``: the files the model's weights were read from;
    ``training_segment_length``: the mean length of the segments it was trained on, where
    its ``config.json`` records it (checkpoints written by ``bench.train``), else None.
    """

    embeddings: torch.Tensor
    accumulate: bool
    weight_files: tuple[Path, ...]
    training_segment_length: int | None = None

    @property
    def summary_length(self) -> int:
        return int(self.embeddings.shape[0])


def load_summary_spec(model: Any, name: str) -> SummarySpec:
    """The summary spec of ``model`` (a loaded AutoCompressor) whose weights are at ``name``."""
    config = model.config
    if getattr(config, "model_type", None) == "opt":
        raise AutoCompressorCheckpointError(
            f"{name}: OPT AutoCompressors give summary tokens the padding position; only the "
            "Llama-style variant (positions 0, 1, ... over the whole segment) is implemented")
    summary_length = _config_int(config, "summary_length", name)
    accumulate = getattr(config, "accumulate_summary", None)
    if not isinstance(accumulate, bool):
        raise AutoCompressorCheckpointError(
            f"{name}: config.json has no boolean 'accumulate_summary'; not an AutoCompressor "
            "checkpoint (it is saved by the AutoCompressors training code)")
    files = weight_files(name, getattr(config, "_commit_hash", None))
    embeddings = _read_tensor(files, SUMMARY_WEIGHT, name)
    hidden = int(model.get_input_embeddings().weight.shape[1])
    if tuple(embeddings.shape) != (summary_length, hidden):
        raise AutoCompressorCheckpointError(
            f"{name}: {SUMMARY_WEIGHT} has shape {list(embeddings.shape)} but summary_length "
            f"{summary_length} and hidden size {hidden} need [{summary_length}, {hidden}]")
    like = model.get_input_embeddings().weight
    trained = (None if getattr(config, TRAINING_SEGMENT_LENGTH, None) is None
               else _config_int(config, TRAINING_SEGMENT_LENGTH, name))
    return SummarySpec(embeddings.to(device=like.device, dtype=like.dtype), accumulate,
                       tuple(files.values()), trained)


def _config_int(config: Any, field: str, name: str) -> int:
    value = getattr(config, field, None)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise AutoCompressorCheckpointError(
            f"{name}: config.json has no positive integer '{field}' (found {value!r}); not an "
            "AutoCompressor checkpoint")
    return value


def weight_files(name: str, revision: str | None = None) -> dict[str, Path]:
    """Tensor name -> weight file, for the first of :data:`WEIGHT_FILES` the model has."""
    for filename in WEIGHT_FILES:
        found = _locate(name, filename, revision)
        if found is None:
            continue
        if not filename.endswith(".index.json"):
            return {"": found}
        weight_map: dict[str, str] = read_json(found, {"weight_map": dict})["weight_map"]
        unnamed = sorted(key for key, shard in weight_map.items() if not isinstance(shard, str))
        if unnamed:
            raise CheckpointFileError(f"the shard of {unnamed[0]!r} is not a file name", found,
                                      field="weight_map")
        shards = {shard: _locate(name, shard, revision) for shard in set(weight_map.values())}
        missing = sorted(shard for shard, path in shards.items() if path is None)
        if missing:
            raise AutoCompressorCheckpointError(
                f"{name}: {filename} lists shard(s) {', '.join(missing)} that are not present")
        return {tensor: shards[shard] for tensor, shard in weight_map.items()}  # type: ignore[misc]
    raise AutoCompressorCheckpointError(
        f"{name}: no weight file ({', '.join(WEIGHT_FILES)}) in the folder or the Hugging Face "
        "cache; download the model first (offline nothing is fetched) or pass a local folder "
        "as pretrained=")


def _locate(name: str, filename: str, revision: str | None) -> Path | None:
    folder = Path(name)
    if folder.is_dir():
        path = folder / filename
        return path if path.is_file() else None
    from transformers.utils.hub import cached_file

    try:
        found = cached_file(name, filename, revision=revision,
                            _raise_exceptions_for_missing_entries=False,
                            _raise_exceptions_for_connection_errors=False)
    except (OSError, ValueError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise AutoCompressorCheckpointError(f"{name}: cannot look up {filename}: {reason}") \
            from None
    return None if found is None else Path(found)


def _read_tensor(files: dict[str, Path], tensor: str, name: str) -> torch.Tensor:
    path = files.get(tensor, files.get(""))
    if path is None:
        raise AutoCompressorCheckpointError(
            f"{name}: the weight index has no {tensor}; not an AutoCompressor checkpoint")
    found = read_tensors(path, tensor.__eq__)
    if tensor not in found:
        raise _missing(path, tensor)
    return found[tensor]


def _missing(path: Path, tensor: str) -> AutoCompressorCheckpointError:
    return AutoCompressorCheckpointError(
        f"{path}: has no {tensor} (the summary-token embeddings); not an AutoCompressor "
        "checkpoint")


def weights_digest(files: tuple[Path, ...]) -> str:
    """sha256 over the names and contents of the weight files (identifies the compressor).

    A file in the Hugging Face cache is a link to a blob named by its own sha256, which is
    used as is; other files are hashed.
    """
    digest = hashlib.sha256()
    for path in sorted(set(files)):
        resolved = path.resolve()
        blob = resolved.name if _HUB_BLOB.fullmatch(resolved.name) else sha256_file(resolved)
        digest.update(f"{path.name}\0{blob}\n".encode())
    return digest.hexdigest()
