"""PISCO training (naver/pisco's train.py: PretrainingCollator, then FineTuningCollator).

The compressor LM is trained whole, with the connector; the decoder (``--base``) gets LoRA
on every linear layer (rank ``--lora-r``, alpha 2 x rank, the released format's rule) and
trained copies of its embeddings and output layer, grown by ``<MEM>`` and ``<AE>``. The loss
is the decoder's next-token cross-entropy over the targets of :mod:`.collate`. Fine-tuning
starts from the pretraining run's ``final/`` (``--init-from``). The export is the released
layout (:mod:`.checkpoint`), loaded with ``compressor=pisco,checkpoint=OUT/final``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch

from bench.compressors.soft.pisco.checkpoint import (
    COMPRESSOR,
    COMPRESSOR_TOKENIZER,
    CONFIG_FILE,
    CONNECTOR,
    DECODER_STATE,
    DECODER_TOKENIZER,
    ORIGINAL,
    TRAINED_COPY,
    read_checkpoint,
)
from bench.compressors.soft.pisco.collate import Lengths, PiscoCollator
from bench.compressors.soft.pisco.decoder import module_path
from bench.compressors.soft.pisco.layout import SPLITS
from bench.compressors.soft.pisco.load import NewModel, PiscoParts, from_checkpoint, new_model
from bench.compressors.soft.pisco.tokens import PiscoTokenizer
from bench.substrate.atomic import atomic_write_text
from bench.training.config import TrainConfig
from bench.training.lm_methods import load_trained
from bench.training.method import MethodParts
from bench.training.registry import TrainingMethod, register_training_method

DEFAULT_RATE = 16
DEFAULT_MLP_HIDDEN = 4096


def _about(text: str, choices: tuple[str, ...] | None = None) -> dict[str, Any]:
    return {"help": text, "choices": choices}


@dataclass(frozen=True)
class PiscoTrainOptions:
    """PISCO's own training options (each a ``python -m bench.train`` flag)."""

    compressor_model: str | None = field(default=None, metadata=_about(
        "compressor LM, hub id or folder (default: --base; with --init-from its compressor/)"))
    compression_rate: int | None = field(default=None, metadata=_about(
        f"compressor ids per vector: a chunk of n ids gets n // rate + 1 (default: "
        f"--init-from's, else {DEFAULT_RATE})"))
    compressor_mlp_hidden_dim: int | None = field(default=None, metadata=_about(
        f"connector MLP width (default: --init-from's, else {DEFAULT_MLP_HIDDEN})"))
    compressor_max_length: int = field(default=128, metadata=_about(
        "compressor ids per chunk, BOS included"))
    decoder_max_length: int = field(default=512, metadata=_about("decoder ids kept per example"))
    ae_ratio: float = field(default=0.5, metadata=_about(
        "pretrain: share of auto-encoding examples (the rest: text continuation)"))
    decoder_lora_dropout: float = field(default=0.1, metadata=_about("decoder LoRA dropout"))
    chunk_docs: bool = field(default=True, metadata=_about(
        "finetune: cut long documents into chunks (else keep their first "
        "--compressor-max-length ids)"))
    split: str = field(default="none", metadata=_about(
        "finetune: the context is one document (none) or one per paragraph", SPLITS))
    query_dependent: bool = field(default=False, metadata=_about(
        "finetune: OSCAR's question-aware compression ('Query: q\\n Document: d')"))

    def __post_init__(self) -> None:
        if not 0.0 <= self.ae_ratio <= 1.0 or not 0.0 <= self.decoder_lora_dropout < 1.0:
            raise ValueError("pisco: --ae-ratio must be in [0, 1] and --decoder-lora-dropout "
                             "in [0, 1)")
        for name in ("compression_rate", "compressor_mlp_hidden_dim", "compressor_max_length",
                     "decoder_max_length"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"pisco: --{name.replace('_', '-')} must be >= 1")
        if self.split not in SPLITS:
            raise ValueError(f"pisco: --split must be one of {', '.join(SPLITS)}")


@dataclass
class PiscoBuilt:
    """A training run's model, its collate function and what its export needs."""

    parts: PiscoParts
    collate: PiscoCollator
    rate: int
    originals: dict[str, torch.Tensor]
    """The decoder's embedding and output rows before training (saved beside the trained
    copies, as the released layout holds them)."""


def options_of(config: TrainConfig) -> PiscoTrainOptions:
    options: PiscoTrainOptions = PISCO.options_of(config.extra)
    return options


def load_decoder_lm(config: TrainConfig, cuda: bool) -> Any:
    from transformers import AutoModelForCausalLM

    model: Any = AutoModelForCausalLM.from_pretrained(config.base, revision=config.revision,
                                                      dtype=config.torch_dtype(cuda),
                                                      trust_remote_code=False)
    return model.to("cuda" if cuda else "cpu")


def build(config: TrainConfig, cuda: bool) -> PiscoBuilt:
    """The model of a run: from ``--init-from`` (a released-layout folder) or new."""
    options = options_of(config)
    decoder = load_decoder_lm(config, cuda)
    if config.init_from:
        checkpoint = read_checkpoint(config.init_from)
        parts = from_checkpoint(checkpoint, decoder, options.decoder_lora_dropout)
        _adopt_chat_template(parts, config)
        originals = {**_embedding_rows(decoder), **checkpoint.decoder.originals}
        rate = options.compression_rate or checkpoint.compression_rate
    else:
        rate = options.compression_rate or DEFAULT_RATE
        spec = NewModel(options.compressor_model or config.base, rate,
                        options.compressor_mlp_hidden_dim or DEFAULT_MLP_HIDDEN, config.lora_r,
                        options.decoder_lora_dropout, config.revision)
        parts = new_model(spec, decoder, config.base)
        originals = _embedding_rows(decoder)
    _mark_trained(parts)
    if config.gradient_checkpointing:
        for lm in (parts.model.compressor, parts.model.decoder):
            lm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    lengths = Lengths(rate, options.compressor_max_length, options.decoder_max_length)
    collate = PiscoCollator(parts.compressor_tokenizer, parts.decoder_tokenizer,
                            parts.model.compressor_mem, lengths, options.ae_ratio,
                            options.chunk_docs, options.split, options.query_dependent,
                            config.seed)
    return PiscoBuilt(parts, collate, rate, originals)


def _adopt_chat_template(parts: PiscoParts, config: TrainConfig) -> None:
    """Give an ``--init-from`` decoder tokenizer without a chat template that of ``--base``
    (the reference rebuilds the decoder tokenizer from the base model when it loads)."""
    tokenizer = parts.decoder_tokenizer.hf
    if not tokenizer.chat_template:
        tokenizer.chat_template = PiscoTokenizer.load(config.base, config.revision).hf.chat_template


def _embedding_rows(decoder: Any) -> dict[str, torch.Tensor]:
    return {module_path(decoder, layer): layer.weight.detach().clone()
            for layer in (decoder.get_input_embeddings(), decoder.get_output_embeddings())}


def _mark_trained(parts: PiscoParts) -> None:
    """Train the compressor, the connector, the decoder's LoRA and its two embedding tables."""
    model = parts.model
    model.requires_grad_(False)
    model.compressor.requires_grad_(True)
    model.connector.requires_grad_(True)
    for name, parameter in model.decoder.named_parameters():
        if ".lora_" in name:
            parameter.requires_grad_(True)
    model.decoder.get_input_embeddings().weight.requires_grad_(True)
    model.decoder.get_output_embeddings().weight.requires_grad_(True)


def decoder_state(built: PiscoBuilt) -> dict[str, torch.Tensor]:
    """``decoder_state.pt``'s tensors: LoRA matrices, trained and original embedding rows."""
    decoder = built.parts.model.decoder
    state = {name: tensor.detach().cpu().contiguous() for name, tensor in
             decoder.state_dict().items() if ".lora_" in name}
    for layer in (decoder.get_input_embeddings(), decoder.get_output_embeddings()):
        path = module_path(decoder, layer)
        state[path + ORIGINAL] = built.originals[path].detach().cpu().contiguous()
        state[path + TRAINED_COPY] = layer.weight.detach().cpu().contiguous()
    return state


def save_released(built: PiscoBuilt, config: TrainConfig, folder: Path,
                  inputs: dict[str, Any]) -> None:
    """Write the released layout (what naver/pisco's ``save_pretrained`` writes)."""
    import transformers

    model, options = built.parts.model, options_of(config)
    folder.mkdir(parents=True, exist_ok=True)
    values = {"model_type": "PISCO", "decoder_model_name": config.base,
              "compressor_model_name": options.compressor_model or config.init_from
              or config.base, "compr_rate": built.rate,
              "compressor_mlp_hidden_dim": int(next(model.connector.parameters()).shape[0]),
              "lora_decoder": True, "lora_r_decoder": _rank(built),
              "attn_implementation": None, "device_map": None, "load_decoder": True,
              "decoder_gradient_checkpointing": False,
              "transformers_version": transformers.__version__, "training_inputs": inputs}
    atomic_write_text(folder / CONFIG_FILE, json.dumps(values, indent=2, sort_keys=True) + "\n")
    torch.save(decoder_state(built), folder / DECODER_STATE)
    model.compressor.save_pretrained(folder / COMPRESSOR, safe_serialization=True)
    torch.save({k: v.detach().cpu() for k, v in model.connector.state_dict().items()},
               folder / CONNECTOR)
    built.parts.compressor_tokenizer.save(folder / COMPRESSOR_TOKENIZER)
    built.parts.decoder_tokenizer.save(folder / DECODER_TOKENIZER)


def _rank(built: PiscoBuilt) -> int:
    decoder = built.parts.model.decoder
    return next(int(t.shape[0]) for name, t in decoder.named_parameters() if ".lora_A." in name)


def _export(config: TrainConfig, cuda: bool, inputs: dict[str, Any], folder: Path,
            weights: dict[str, torch.Tensor], final: bool) -> None:
    built = build(config, cuda)
    load_trained(built.parts.model, weights)
    save_released(built, config, folder, inputs)


def pisco_parts(config: TrainConfig, cuda: bool, inputs: dict[str, Any]) -> MethodParts:
    """The parts of a PISCO run (``inputs``: recorded in the export's ``config.json``)."""
    built = build(config, cuda)
    return MethodParts(module=built.parts.model, collate=built.collate,
                       base=built.parts.model.decoder,
                       export=partial(_export, config, cuda, inputs), checkpoint_export=False)


PISCO = register_training_method(TrainingMethod(
    name="pisco",
    summary="compressor LM + MLP connector into a LoRA decoder (naver/pisco); writes the "
            "released checkpoint layout",
    parts=pisco_parts, options=PiscoTrainOptions))
