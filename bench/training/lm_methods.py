"""The methods that fine-tune the LM itself: ``gist`` and ``autocompressor``.

The LM is trained fully, or with LoRA (``--lora``; merged back when saved). Resumable
checkpoints hold the training state only (:mod:`.resume`); the evaluation export, in the
method's published layout, is written once at the end: the main process loads the base again,
sets it up as the run did (gist token, LoRA, summary embeddings), loads the trained tensors
gathered from every process into it and saves it, so a sharded run needs no process to hold
the whole model twice. Its ``config.json`` records the run's inputs (``training_inputs``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bench.substrate.atomic import atomic_write_text
from bench.training.config import LM_TRAINING_METHODS, TrainConfig
from bench.training.method import MethodParts

FULL_FINETUNE_FLOPS = 6  # forward 2 N, backward through activations 2 N and to weights 2 N


@dataclass
class _Built:
    """A method's training module and what saving it needs."""

    module: nn.Module
    tokenizer: Any
    model: Any
    """The LM (a peft wrapper under ``--lora``)."""
    collate: Any


def _lora(model: Any, config: TrainConfig, trained_fully: Sequence[str] = ()) -> Any:
    """LoRA layers injected into ``model`` in place (the returned wrapper merges them)."""
    from peft import LoraConfig, get_peft_model

    settings = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha,
                          lora_dropout=config.lora_dropout,
                          target_modules=list(config.lora_targets), task_type="CAUSAL_LM",
                          modules_to_save=list(trained_fully) or None)
    return get_peft_model(model, settings)


def _base(config: TrainConfig, cuda: bool, tokenizer_from: str | None = None
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


def build_gist(config: TrainConfig, cuda: bool) -> _Built:
    from bench.compressors.soft.gist_prompt import GistTokenizer
    from bench.training.gist_method import (
        GIST_TOKEN,
        GistCollator,
        GistTrainingModel,
        add_gist_token,
    )

    tokenizer, model = _base(config, cuda, config.init_from)
    gist_id = add_gist_token(model, tokenizer)
    if config.lora:  # the new gist row must be learnt: embeddings are trained fully
        model = _lora(model, config, ("embed_tokens", "lm_head"))
    tokens = GistTokenizer(tokenizer, GIST_TOKEN, gist_id, int(tokenizer.bos_token_id))
    collate = GistCollator(tokens, config.num_mem, config.max_context_tokens,
                           config.max_answer_tokens)
    return _Built(GistTrainingModel(model, gist_id), tokenizer, model, collate)


def build_autocompressor(config: TrainConfig, cuda: bool) -> _Built:
    from bench.training.autocompressor_method import (
        AutoCompressorCollator,
        AutoCompressorTrainingModel,
    )

    tokenizer, model = _base(config, cuda)
    module = AutoCompressorTrainingModel(model, config.num_mem)
    if config.init_from:
        from bench.compressors.soft.autocompressor_checkpoint import load_summary_spec

        with torch.no_grad():
            module.embed_summary.weight[:] = load_summary_spec(model, config.init_from).embeddings
    wrapped = _lora(model, config) if config.lora else model
    collate = AutoCompressorCollator(tokenizer, config.max_context_tokens,
                                     config.max_answer_tokens, config.training_substeps,
                                     config.segments_per_substep,
                                     int(model.config.max_position_embeddings), config.seed)
    return _Built(module, tokenizer, wrapped, collate)


BUILDERS = dict(zip(LM_TRAINING_METHODS, (build_gist, build_autocompressor), strict=True))


def load_trained(module: nn.Module, weights: dict[str, torch.Tensor]) -> None:
    """Copy the gathered trained tensors into a freshly built ``module`` (an error names any
    trained tensor that is missing)."""
    trained = {name for name, p in module.named_parameters() if p.requires_grad}
    missing = sorted(trained - set(weights))
    if missing:
        raise ValueError(f"the gathered training state lacks {len(missing)} trained tensor(s), "
                         f"e.g. {missing[:3]}")
    module.load_state_dict({name: weights[name] for name in trained}, strict=False)


def _export(config: TrainConfig, cuda: bool, inputs: dict[str, Any], directory: Path,
            weights: dict[str, torch.Tensor], final: bool) -> None:
    from bench.training.autocompressor_method import save_autocompressor
    from bench.training.gist_method import save_gist

    built = BUILDERS[config.method](config, cuda)
    load_trained(built.module, weights)
    if config.method == "gist":
        save_gist(built.model, built.tokenizer, config.num_mem, directory)
    else:
        summary = built.module.get_parameter("embed_summary.weight")
        save_autocompressor(built.model, summary, built.tokenizer, directory)
    _record_inputs(directory / "config.json", inputs)


def _record_inputs(config_file: Path, inputs: dict[str, Any]) -> None:
    """Add the identities of the run's inputs to the exported model's ``config.json``."""
    config = json.loads(config_file.read_text(encoding="utf-8"))
    config["training_inputs"] = inputs
    atomic_write_text(config_file, json.dumps(config, indent=2, sort_keys=True) + "\n")


def lm_method_parts(config: TrainConfig, cuda: bool, inputs: dict[str, Any]) -> MethodParts:
    """The parts of a gist or AutoCompressor run (``inputs``: their identities, recorded in
    the exported ``config.json``)."""
    built = BUILDERS[config.method](config, cuda)
    model = built.model.get_base_model() if config.lora else built.model
    external = ([built.module.get_parameter("embed_summary.weight")]
                if config.method == "autocompressor" else [])
    return MethodParts(
        module=built.module, collate=built.collate, base=model,
        export=partial(_export, config, cuda, inputs), checkpoint_export=False,
        external_parameters=external,
        flops_per_parameter_token=4 if config.lora else FULL_FINETUNE_FLOPS,
        supports_deepspeed=config.method != "autocompressor" or config.training_substeps == 1)
