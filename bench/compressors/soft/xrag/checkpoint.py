"""Reading xRAG checkpoints in the released format (``Hannibal046/xrag-7b``).

A checkpoint is a whole model folder, as ``save_pretrained`` writes it: ``config.json`` (a
Mistral config plus ``projector_type`` and ``retriever_hidden_size``), the weights
(``pytorch_model.bin``, read with ``weights_only=True``, or safetensors, either possibly
sharded with an index) holding the LLM and ``projector.projector.*``, and a tokenizer with the
added ``<xRAG>`` token. transformers loads such a folder as the plain causal LM of its
``model_type`` and leaves the projector aside; its tensors are read here from the weight
files (a local folder, or the Hugging Face cache for a hub id).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from bench.compressors.soft._checkpoint_files import read_tensors
from bench.compressors.soft.autocompressor.checkpoint import (
    AutoCompressorCheckpointError,
    weight_files,
)
from bench.compressors.soft.xrag.projector import STATE_PREFIX, Projector
from bench.substrate.errors import InputError


class XragCheckpointError(InputError):
    """A checkpoint that does not hold a projector fitting the model and the retriever."""


@dataclass(frozen=True)
class ProjectorSpec:
    """What ``config.json`` says about the projector."""

    projector_type: str
    retriever_hidden_size: int
    hidden_size: int


@dataclass(frozen=True)
class XragCheckpoint:
    """The projector of one checkpoint, with where it was read from."""

    location: str
    spec: ProjectorSpec
    tensors: dict[str, torch.Tensor]
    files: tuple[Path, ...]

    @property
    def sha256(self) -> str:
        """Digest of the projector's tensors (names, dtypes, shapes and values)."""
        return tensors_digest(self.tensors)

    def projector(self) -> Projector:
        """A projector holding these tensors (float32, CPU)."""
        spec = self.spec
        projector = Projector(spec.projector_type, spec.retriever_hidden_size, spec.hidden_size)
        load_projector_state(projector, self.tensors, self.location)
        return projector


def tensors_digest(tensors: dict[str, torch.Tensor]) -> str:
    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}\0{tensor.dtype}\0{tuple(tensor.shape)}\n".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def projector_spec(config: Any, location: str) -> ProjectorSpec:
    """The projector fields of a model config (an xRAG checkpoint's ``config.json``)."""
    projector_type = getattr(config, "projector_type", None)
    retriever_hidden = getattr(config, "retriever_hidden_size", None)
    if not isinstance(projector_type, str) or not isinstance(retriever_hidden, int) \
            or isinstance(retriever_hidden, bool) or retriever_hidden < 1:
        raise XragCheckpointError(
            "config.json has no 'projector_type' and positive 'retriever_hidden_size'; not an "
            "xRAG checkpoint", location, hint="pass an xRAG model such as Hannibal046/xrag-7b")
    return ProjectorSpec(projector_type, retriever_hidden, int(config.hidden_size))


def load_config(location: str, revision: str | None = None) -> Any:
    """The model config at ``location`` (a folder or a hub id)."""
    from transformers import AutoConfig

    from bench.hub import load_from_hub

    return load_from_hub(lambda: AutoConfig.from_pretrained(location, revision=revision),
                         location, "xRAG checkpoint", "checkpoint= in --model_args",
                         revision=revision)


def read_checkpoint(location: str, config: Any | None = None,
                    revision: str | None = None) -> XragCheckpoint:
    """The projector of the checkpoint at ``location`` (``config``: its already loaded
    config, else it is read)."""
    spec = projector_spec(config if config is not None else load_config(location, revision),
                          location)
    try:
        files = weight_files(location, revision)
    except AutoCompressorCheckpointError as error:
        raise XragCheckpointError(str(error)) from None
    holding = sorted({path for name, path in files.items()
                      if name == "" or name.startswith(STATE_PREFIX)})
    tensors: dict[str, torch.Tensor] = {}
    for path in holding:
        tensors.update(read_tensors(path, lambda name: name.startswith(STATE_PREFIX)))
    checkpoint = XragCheckpoint(location, spec, tensors, tuple(holding))
    checkpoint.projector()  # refuses missing, unexpected or misshapen tensors
    return checkpoint


def load_projector_state(projector: Projector, tensors: dict[str, torch.Tensor],
                         location: str) -> None:
    """Copy the released-name ``tensors`` into ``projector``, naming any missing, unexpected
    or misshapen one."""
    expected = projector.released_state()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    wrong = [f"{name} {tuple(tensors[name].shape)} (expected {tuple(tensor.shape)})"
             for name, tensor in expected.items()
             if name in tensors and tensors[name].shape != tensor.shape]
    problems = [f"{label}: {', '.join(names)}" for label, names in
                (("missing", missing), ("unexpected", unexpected), ("misshapen", wrong)) if names]
    if problems:
        raise XragCheckpointError(
            f"the projector ({projector.projector_type}) does not fit its tensors: "
            f"{'; '.join(problems)}", location)
    state = {name[len(STATE_PREFIX):]: tensor for name, tensor in tensors.items()}
    projector.projector.load_state_dict(state)
