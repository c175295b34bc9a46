"""Building a :class:`PiscoModel` on a decoder model: from a released checkpoint, or new."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from bench.compressors.soft._checkpoint_files import CheckpointFileError
from bench.compressors.soft.pisco.checkpoint import PiscoCheckpoint
from bench.compressors.soft.pisco.decoder import (
    grow_vocabulary,
    inject_lora,
    linear_layers,
    load_decoder_state,
)
from bench.compressors.soft.pisco.layout import AE_TOKEN, MEM_TOKEN
from bench.compressors.soft.pisco.model import PiscoModel, make_connector
from bench.compressors.soft.pisco.tokens import PiscoTokenizer


@dataclass
class PiscoParts:
    """A PISCO model and its two tokenizers."""

    model: PiscoModel
    compressor_tokenizer: PiscoTokenizer
    decoder_tokenizer: PiscoTokenizer


def load_compressor_lm(name_or_path: str, dtype: torch.dtype, device: torch.device,
                       revision: str | None = None) -> Any:
    """A compressor LM (remote code off)."""
    from transformers import AutoModelForCausalLM

    model: Any = AutoModelForCausalLM.from_pretrained(name_or_path, revision=revision,
                                                      dtype=dtype, trust_remote_code=False)
    return model.to(device)


def from_checkpoint(checkpoint: PiscoCheckpoint, decoder: Any, lora_dropout: float = 0.0
                    ) -> PiscoParts:
    """The checkpoint's model on ``decoder`` (changed in place)."""
    weight = decoder.get_input_embeddings().weight
    compressor_tokenizer = PiscoTokenizer.load(str(checkpoint.compressor_tokenizer_dir))
    decoder_tokenizer = PiscoTokenizer.load(str(checkpoint.decoder_tokenizer_dir))
    compressor = load_compressor_lm(str(checkpoint.compressor_dir), weight.dtype, weight.device)
    load_decoder_state(decoder, checkpoint.decoder, lora_dropout, str(checkpoint.path))
    connector = _connector(checkpoint, compressor, decoder)
    model = PiscoModel(compressor, connector, decoder, compressor_tokenizer.token_id(MEM_TOKEN),
                       decoder_tokenizer.decoder_ids())
    _check_vocabularies(model, checkpoint)
    return PiscoParts(model, compressor_tokenizer, decoder_tokenizer)


def _connector(checkpoint: PiscoCheckpoint, compressor: Any, decoder: Any) -> torch.nn.Sequential:
    tensors = checkpoint.connector
    sizes = (int(tensors["0.weight"].shape[1]), int(tensors["2.weight"].shape[0]))
    expected = (int(compressor.config.hidden_size), int(decoder.config.hidden_size))
    if sizes != expected:
        raise CheckpointFileError(f"connector maps {sizes[0]} -> {sizes[1]}, the compressor and "
                                  f"decoder have hidden sizes {expected[0]} and {expected[1]}",
                                  checkpoint.path / "connector.pt")
    connector = make_connector(sizes[0], checkpoint.mlp_hidden, sizes[1])
    connector.load_state_dict(tensors)
    weight = decoder.get_input_embeddings().weight
    return connector.to(device=weight.device, dtype=weight.dtype)


def _check_vocabularies(model: PiscoModel, checkpoint: PiscoCheckpoint) -> None:
    rows = int(model.compressor.get_input_embeddings().num_embeddings)
    if model.compressor_mem >= rows:
        raise CheckpointFileError(f"the compressor has {rows} embedding rows, its tokenizer's "
                                  f"{MEM_TOKEN} is {model.compressor_mem}",
                                  checkpoint.compressor_dir)
    rows = int(model.decoder.get_input_embeddings().num_embeddings)
    if max(model.ids.mem, model.ids.ae) >= rows:
        raise CheckpointFileError(f"the decoder has {rows} embedding rows, its tokenizer's "
                                  f"{MEM_TOKEN}/{AE_TOKEN} are {model.ids.mem}/{model.ids.ae}",
                                  checkpoint.decoder_tokenizer_dir)


@dataclass(frozen=True)
class NewModel:
    """What a new (untrained) PISCO model is made of."""

    compressor: str
    compression_rate: int
    mlp_hidden: int
    lora_r: int
    lora_dropout: float
    revision: str | None = None


def new_model(spec: NewModel, decoder: Any, decoder_name: str) -> PiscoParts:
    """A new model: the compressor LM and both tokenizers grown by the special tokens, a
    seeded connector and fresh LoRA on every linear layer of ``decoder``."""
    weight = decoder.get_input_embeddings().weight
    compressor_tokenizer = PiscoTokenizer.load(spec.compressor, spec.revision)
    compressor_tokenizer.add_special_tokens([MEM_TOKEN])
    decoder_tokenizer = PiscoTokenizer.load(decoder_name, spec.revision)
    decoder_tokenizer.add_special_tokens([MEM_TOKEN, AE_TOKEN])
    compressor = load_compressor_lm(spec.compressor, weight.dtype, weight.device, spec.revision)
    for lm, tokenizer in ((compressor, compressor_tokenizer), (decoder, decoder_tokenizer)):
        rows = int(lm.get_input_embeddings().num_embeddings)
        grow_vocabulary(lm, max(rows, len(tokenizer.hf)))
    inject_lora(decoder, linear_layers(decoder), spec.lora_r, spec.lora_dropout)
    connector = make_connector(int(compressor.config.hidden_size), spec.mlp_hidden,
                               int(decoder.config.hidden_size))
    connector = connector.to(device=weight.device, dtype=weight.dtype)
    model = PiscoModel(compressor, connector, decoder, compressor_tokenizer.token_id(MEM_TOKEN),
                       decoder_tokenizer.decoder_ids())
    return PiscoParts(model, compressor_tokenizer, decoder_tokenizer)
