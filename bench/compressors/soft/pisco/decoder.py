"""PISCO's decoder: the target model with LoRA on every linear layer and trained embedding
and output rows for a vocabulary grown by ``<MEM>`` and ``<AE>``.

The target model is changed in place: its embeddings are resized and replaced by the
checkpoint's trained copies (untied where they were tied), and peft LoRA layers (alpha =
2 x rank, as the released code sets it) are injected into the linear layers the checkpoint
names.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from bench.compressors.soft._checkpoint_files import CheckpointFileError
from bench.compressors.soft.pisco.checkpoint import ADAPTER, DecoderState
from bench.training.strategy import writable


def module_path(model: nn.Module, module: nn.Module) -> str:
    """The name of ``module`` inside ``model``."""
    return str(next(name for name, found in model.named_modules() if found is module))


def linear_layers(model: Any) -> list[str]:
    """Every linear layer but the output layer (peft's ``all-linear``)."""
    output = model.get_output_embeddings()
    return [name for name, module in model.named_modules()
            if isinstance(module, nn.Linear) and module is not output]


def inject_lora(model: Any, modules: Sequence[str], rank: int, dropout: float) -> None:
    """peft LoRA layers on ``modules`` (rank ``rank``, alpha ``2 * rank``)."""
    from peft import LoraConfig, inject_adapter_in_model

    config = LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=dropout,
                        target_modules=list(modules), bias="none")
    inject_adapter_in_model(config, model, adapter_name=ADAPTER)


def grow_vocabulary(model: Any, rows: int) -> None:
    """Resize the embeddings to ``rows`` (new rows: the mean of the others) and untie the
    output layer from the input embeddings."""
    old = int(model.get_input_embeddings().num_embeddings)
    model.resize_token_embeddings(rows, mean_resizing=False)
    embedding, output = model.get_input_embeddings(), model.get_output_embeddings()
    if output.weight is embedding.weight:
        output.weight = nn.Parameter(embedding.weight.detach().clone())
        model.config.tie_word_embeddings = False
    with torch.no_grad(), writable(embedding.weight, output.weight):
        for weight in (embedding.weight, output.weight):
            if rows > old:
                weight[old:] = weight[:old].mean(dim=0)


def load_decoder_state(model: Any, state: DecoderState, dropout: float, source: str) -> None:
    """Give the target model the checkpoint's embeddings, output layer and LoRA."""
    embedding_path = module_path(model, model.get_input_embeddings())
    output_path = module_path(model, model.get_output_embeddings())
    if set(state.embeddings) != {embedding_path, output_path}:
        raise CheckpointFileError(f"trained rows for {sorted(state.embeddings)}, the target "
                                  f"model's are {embedding_path} and {output_path}", source)
    rows = state.embeddings[embedding_path]
    _check_base(model, state.originals.get(embedding_path), source)
    grow_vocabulary(model, int(rows.shape[0]))
    _copy(model.get_input_embeddings().weight, rows, embedding_path, source)
    _copy(model.get_output_embeddings().weight, state.embeddings[output_path], output_path,
          source)
    missing = [m for m in state.lora if not _has_module(model, m)]
    if missing:
        raise CheckpointFileError(f"LoRA for {missing[0]}, which the target model does not "
                                  "have; pretrained= must be the checkpoint's decoder", source)
    inject_lora(model, list(state.lora), state.rank, dropout)
    for module, (a, b) in state.lora.items():
        layer = model.get_submodule(module)
        _copy(layer.lora_A[ADAPTER].weight, a, f"{module}.lora_A", source)
        _copy(layer.lora_B[ADAPTER].weight, b, f"{module}.lora_B", source)


def _has_module(model: nn.Module, name: str) -> bool:
    try:
        return isinstance(model.get_submodule(name), nn.Linear)
    except AttributeError:
        return False


def _check_base(model: Any, original: torch.Tensor | None, source: str) -> None:
    """Warn when the checkpoint's base embedding rows differ from the target model's."""
    weight = model.get_input_embeddings().weight
    if original is None:
        return
    if original.shape[1] != weight.shape[1] or original.shape[0] < weight.shape[0]:
        raise CheckpointFileError(f"embeddings of shape {tuple(original.shape)} do not fit the "
                                  f"target model's {tuple(weight.shape)}; pretrained= must be "
                                  "the checkpoint's decoder", source)
    rows = int(weight.shape[0])
    base = original[:rows].to(device=weight.device, dtype=torch.float32)
    if not torch.equal(base, weight.detach().float()):
        warnings.warn(f"{source}: the target model's embeddings differ from those the "
                      "checkpoint was trained on (another base model, or another dtype)",
                      UserWarning, stacklevel=3)


def _copy(target: torch.Tensor, value: torch.Tensor, name: str, source: str) -> None:
    if tuple(target.shape) != tuple(value.shape):
        raise CheckpointFileError(f"tensor {name} has shape {tuple(value.shape)}, the target "
                                  f"model needs {tuple(target.shape)}", source)
    with torch.no_grad():
        target.copy_(value)
