"""What the methods that fine-tune the LM itself (gist, AutoCompressor) share.

The LM is trained fully, or with LoRA (``--lora``; merged back when saved). Resumable
checkpoints hold the training state only (:mod:`.resume`); the evaluation export, in the
method's published layout, is written once at the end: the main process loads the base again,
sets it up as the run did (gist token, LoRA, summary embeddings), loads the trained tensors
gathered from every process into it and saves it, so a sharded run needs no process to hold
the whole model twice. Its ``config.json`` records the run's inputs (``training_inputs``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bench.substrate.atomic import atomic_write_text
from bench.training.config import TrainConfig
from bench.training.method import MethodParts
from bench.training.registry import Setting

LM_SETTINGS = {"lora": Setting("train LoRA adapters (merged when saved) instead of the whole LM")}
"""The settings every method that fine-tunes the LM reads."""
FULL_FINETUNE_FLOPS = 6  # forward 2 N, backward through activations 2 N and to weights 2 N


@dataclass
class LmBuilt:
    """A method's training module and what saving it needs."""

    module: nn.Module
    tokenizer: Any
    model: Any
    """The LM (a peft wrapper under ``--lora``)."""
    collate: Any


def lora_model(model: Any, config: TrainConfig, trained_fully: Sequence[str] = ()) -> Any:
    """LoRA layers injected into ``model`` in place (the returned wrapper merges them).

    Modules in ``trained_fully`` are trained as copies; where the model ties its output
    embedding to its input embedding, the two copies stay one tensor (as in the base), so
    the merged model is tied like the base and saves the tensor once."""
    from peft import LoraConfig, get_peft_model

    settings = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha,
                          lora_dropout=config.lora_dropout,
                          target_modules=list(config.lora_targets), task_type="CAUSAL_LM",
                          modules_to_save=list(trained_fully) or None,
                          ensure_weight_tying=_adapts_tied_embeddings(
                              model, [*trained_fully, *config.lora_targets]))
    return get_peft_model(model, settings)


def _adapts_tied_embeddings(model: Any, modules: Sequence[str]) -> bool:
    """Whether ``model`` ties its embeddings and ``modules`` name one of them."""
    if not getattr(model.config, "tie_word_embeddings", False):
        return False
    embeddings = (model.get_input_embeddings(), model.get_output_embeddings())
    adapted = {name.rsplit(".", 1)[-1] for name in modules}
    return any(name.rsplit(".", 1)[-1] in adapted for name, module in model.named_modules()
               if any(module is embedding for embedding in embeddings))


def load_lm(config: TrainConfig, cuda: bool, tokenizer_from: str | None = None
            ) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_from or config.base,
                                              revision=None if tokenizer_from else
                                              config.revision)
    model = AutoModelForCausalLM.from_pretrained(config.init_from or config.base,
                                                 revision=config.revision,
                                                 dtype=config.torch_dtype(cuda),
                                                 low_cpu_mem_usage=True)
    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable()  # type: ignore[no-untyped-call]
    return tokenizer, model


def load_trained(module: nn.Module, weights: dict[str, torch.Tensor]) -> None:
    """Copy the gathered trained tensors into a freshly built ``module`` (an error names any
    trained tensor that is missing)."""
    trained = {name for name, p in module.named_parameters() if p.requires_grad}
    missing = sorted(trained - set(weights))
    if missing:
        raise ValueError(f"the gathered training state lacks {len(missing)} trained tensor(s), "
                         f"e.g. {missing[:3]}")
    module.load_state_dict({name: weights[name] for name in trained}, strict=False)


def _export(method: LmMethod, config: TrainConfig, cuda: bool, inputs: dict[str, Any],
            directory: Path, weights: dict[str, torch.Tensor], final: bool) -> None:
    built = method.build(config, cuda)
    load_trained(built.module, weights)
    method.save(built, config, directory)
    _record_inputs(directory / "config.json", inputs)


def _record_inputs(config_file: Path, inputs: dict[str, Any]) -> None:
    """Add the identities of the run's inputs to the exported model's ``config.json``."""
    config = json.loads(config_file.read_text(encoding="utf-8"))
    config["training_inputs"] = inputs
    atomic_write_text(config_file, json.dumps(config, indent=2, sort_keys=True) + "\n")


def _no_external_parameters(built: LmBuilt) -> list[nn.Parameter]:
    return []


def _always(config: TrainConfig) -> bool:
    return True


@dataclass(frozen=True)
class LmMethod:
    """How a method that trains the LM builds its training module and saves its export."""

    build: Callable[[TrainConfig, bool], LmBuilt]
    save: Callable[[LmBuilt, TrainConfig, Path], None]
    """Write the evaluation export of ``built`` (trained tensors loaded) into a folder."""
    external_parameters: Callable[[LmBuilt], list[nn.Parameter]] = _no_external_parameters
    supports_deepspeed: Callable[[TrainConfig], bool] = _always


def lm_method_parts(method: LmMethod, config: TrainConfig, cuda: bool, inputs: dict[str, Any]
                    ) -> MethodParts:
    """The parts of a run of ``method`` (``inputs``: their identities, recorded in the
    exported ``config.json``)."""
    built = method.build(config, cuda)
    model = built.model.get_base_model() if config.lora else built.model
    return MethodParts(
        module=built.module, collate=built.collate, base=model,
        export=partial(_export, method, config, cuda, inputs), checkpoint_export=False,
        external_parameters=method.external_parameters(built),
        flops_per_parameter_token=4 if config.lora else FULL_FINETUNE_FLOPS,
        supports_deepspeed=method.supports_deepspeed(config))
