"""The soft compressors trained on a frozen base (500x: KV memory; ICAE: embedding memory).

Only the LoRA of the encoder, the memory slots and (ICAE) the trigger are trained. Every
checkpoint holds the evaluation export in the project's format; the final one can also be
written as the 500xCompressor code's ``pytorch_model.bin`` (``--export-500x-repo``).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import torch

from bench.compressors.soft.encoder import checkpoint as ckpt
from bench.compressors.soft.encoder.encoder import LoraSettings
from bench.compressors.soft.encoder.export import write_500x_repo, write_compressbench
from bench.compressors.soft.encoder.layout import LAYOUTS, Layout
from bench.compressors.soft.encoder.model import SoftModel
from bench.training.config import TrainConfig
from bench.training.evaluation import generation_metrics
from bench.training.example import Example
from bench.training.method import MethodParts
from bench.training.module import TrainingModule
from bench.training.registry import Setting


def load_base(config: TrainConfig, device_is_cuda: bool) -> tuple[Any, Any]:
    """Tokenizer and frozen base model of the run (meta-device initialisation; under FSDP's
    memory-efficient loading only the first process reads the weights, under ZeRO-3 they
    are partitioned as they load)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(config.base, revision=config.revision)
    model = AutoModelForCausalLM.from_pretrained(config.base, revision=config.revision,
                                                 dtype=config.torch_dtype(device_is_cuda),
                                                 low_cpu_mem_usage=True)
    model.requires_grad_(False)
    return tokenizer, model


def build_model(model_class: type[SoftModel], config: TrainConfig, base: Any, tokenizer: Any
                ) -> SoftModel:
    lora = LoraSettings(config.lora_r, config.lora_alpha, config.lora_dropout,
                        tuple(config.lora_targets))
    layout = config.layout_settings()
    model = model_class(base, tokenizer, config.num_mem, lora, config.seed,
                                       layout)
    if config.init_from:
        path = Path(config.init_from)
        recorded = ckpt.read_config(path)
        ckpt.check_compatible(recorded, path, config.method, base, config.base, config.num_mem)
        _check_same_layout(ckpt.layout_of(recorded), layout, path)
        if model.device.type != "meta":  # FSDP copies the first process's weights
            ckpt.load_weights(model, path)
    if config.gradient_checkpointing:
        model.encoder.enable_gradient_checkpointing()
    return model


def _check_same_layout(recorded: Layout, layout: Layout, path: Path) -> None:
    for name in ("name", "context_length", "decoder_positions"):
        if getattr(recorded, name) != getattr(layout, name):
            raise ckpt.CheckpointMismatchError(
                f"{path / ckpt.CONFIG_FILE}: trained with layout {name}="
                f"{getattr(recorded, name)}, this run uses {getattr(layout, name)}")


def clip_examples(examples: Sequence[Example], max_answer: int, tokenizer: Any) -> list[Example]:
    """QA answers cut to ``max_answer`` tokens (regeneration targets follow the context cut)."""
    clipped = []
    for example in examples:
        if example.kind == "qa":
            ids = tokenizer(example.target, add_special_tokens=False)["input_ids"][:max_answer]
            target = tokenizer.decode(ids, skip_special_tokens=True)
            example = Example(example.context, "qa", target, example.question, example.answers)
        clipped.append(example)
    return clipped


def _export(config: TrainConfig, soft: SoftModel, inputs: dict[str, Any], directory: Path,
            weights: dict[str, torch.Tensor], final: bool) -> None:
    write_compressbench(directory, weights, soft, config.base,
                        {**config.as_json(), "inputs": inputs})
    if final and config.export_500x_repo:
        write_500x_repo(directory, weights)


def _collate(soft: SoftModel, max_answer_tokens: int, examples: list[Example]) -> Any:
    return soft.training_batch(clip_examples(examples, max_answer_tokens, soft.tokenizer))


def soft_parts(model_class: type[SoftModel], config: TrainConfig, cuda: bool,
               inputs: dict[str, Any]) -> MethodParts:
    """The parts of a run training ``model_class`` (``inputs``: their identities, recorded in
    the export's ``training`` settings)."""
    tokenizer, base = load_base(config, cuda)
    soft = build_model(model_class, config, base, tokenizer)
    module = TrainingModule(soft)
    return MethodParts(
        module=module, collate=partial(_collate, soft, config.max_answer_tokens), base=base,
        export=partial(_export, config, soft, inputs), checkpoint_export=True,
        external_parameters=module.external_parameters(),
        generate=partial(generation_metrics, model=soft, batch_size=config.batch_size,
                         n_generate=config.eval_generate,
                         max_answer_tokens=config.max_answer_tokens))


ENCODER_SETTINGS = {
    "layout": Setting("encoder/decoder layout: reference (the 500xCompressor code's: no BOS, "
                      "EOS right-padding to --context-length, memory after it, 500x decoder "
                      "at k) or compressbench (BOS + context, left padding with a mask)",
                      choices=LAYOUTS),
    "context_length": Setting("reference layout: fixed encoder length the context is "
                              "EOS-padded to (training also cuts contexts to it)"),
    "max_qa_len": Setting("reference layout, finetune: question + answer ids are EOS-padded "
                          "to this"),
    "loss_on_padding": Setting("reference layout, pretrain: every EOS pad of the context is a "
                               "target, as in the reference; --no-loss-on-padding scores the "
                               "real tokens and one EOS"),
    "export_500x_repo": Setting("also write final/pytorch_model.bin in the 500xCompressor "
                                "code's format (LoRA on q_proj,v_proj only)"),
}
"""The settings every encoder method reads."""
