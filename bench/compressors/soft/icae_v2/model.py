"""The ICAE v2 model: a LoRA encoder over segments, slots as decoder input embeddings.

The LoRA adapter (q_proj, v_proj) is injected into the caller's base model in place and is
active only while a segment is encoded; the decoder is that same model with the adapter off,
i.e. the exact base model. ``memory_token_embed`` holds the k memory embeddings and the AE, LM
and FT embeddings (see :mod:`.icae_v2_layout`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel

from bench.compressors.soft._torch import input_embedding
from bench.compressors.soft.icae_v2.checkpoint import (
    LORA_TARGETS,
    BaseShape,
    IcaeV2Checkpoint,
    lora_key,
)
from bench.compressors.soft.icae_v2.layout import (
    IGNORE_INDEX,
    IcaeV2Ids,
    LossExample,
    segment_bounds,
    segment_memory_positions,
)
from bench.substrate.errors import InputError

ADAPTER_NAME = "default"


@dataclass(frozen=True)
class IcaeV2Lora:
    """LoRA hyper-parameters of the encoder (the published scripts: r 512, alpha 32)."""

    r: int = 512
    alpha: int = 32
    dropout: float = 0.05


def base_shape(model: PreTrainedModel) -> BaseShape:
    """Layer count, hidden size and LoRA target output sizes of a causal LM."""
    layers = _decoder_layers(model)
    attention = layers[0].self_attn
    return BaseShape(num_layers=len(layers), hidden_size=int(model.config.hidden_size),
                     out_features={t: int(getattr(attention, t).out_features)
                                   for t in LORA_TARGETS})


def _decoder_layers(model: PreTrainedModel) -> nn.ModuleList:
    layers = getattr(model.base_model, "layers", None)
    if not isinstance(layers, nn.ModuleList):
        raise InputError(f"ICAE v2: {type(model).__name__} has no decoder layers at "
                         "model.base_model.layers (a Llama/Mistral-style causal LM is needed)")
    return layers


def _lora_layers(model: nn.Module) -> list[Any]:
    from peft.tuners.lora import LoraLayer

    return [module for module in model.modules() if isinstance(module, LoraLayer)]


class IcaeV2Model(nn.Module):
    """Encoder (LoRA + memory embeddings) and decoder (base model) of ICAE v2."""

    def __init__(self, base: PreTrainedModel, num_mem: int, mean_compression_rate: int,
                 lora: IcaeV2Lora, seed: int = 0) -> None:
        super().__init__()
        from peft import LoraConfig, inject_adapter_in_model

        if num_mem < 1 or mean_compression_rate < 1:
            raise InputError(f"ICAE v2: num_mem ({num_mem}) and mean_compression_rate "
                             f"({mean_compression_rate}) must be >= 1")
        if _lora_layers(base):
            raise InputError("ICAE v2: the base model already carries a LoRA adapter; load a "
                             "fresh copy of the base model for each soft compressor")
        self.shape = base_shape(base)
        config = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                            target_modules=list(LORA_TARGETS), bias="none")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            inject_adapter_in_model(config, base, adapter_name=ADAPTER_NAME)
        self.base = base
        self.lora = lora
        self.mean_compression_rate = mean_compression_rate
        self.ids = IcaeV2Ids(int(base.config.vocab_size), num_mem)
        weight = input_embedding(base).weight
        generator = torch.Generator().manual_seed(seed)
        init = torch.randn(self.ids.embedding_rows, self.shape.hidden_size, generator=generator)
        self.memory_token_embed = nn.Embedding(self.ids.embedding_rows, self.shape.hidden_size,
                                               device=weight.device, dtype=weight.dtype)
        with torch.no_grad():
            self.memory_token_embed.weight.copy_(init)
        self._adapters = _lora_layers(base)
        self._set_adapter(False)

    @property
    def num_mem(self) -> int:
        return self.ids.num_mem

    @property
    def device(self) -> torch.device:
        return self.memory_token_embed.weight.device

    def load_checkpoint(self, checkpoint: IcaeV2Checkpoint) -> None:
        """Copy the checkpoint's LoRA matrices and memory embeddings into the model."""
        if checkpoint.rank != self.lora.r or checkpoint.num_mem != self.num_mem:
            raise InputError(f"{checkpoint.path}: LoRA rank {checkpoint.rank} / k "
                             f"{checkpoint.num_mem}, the model was built with {self.lora.r} / "
                             f"{self.num_mem}")
        with torch.no_grad():
            for layer_index, layer in enumerate(_decoder_layers(self.base)):
                for target in LORA_TARGETS:
                    module = getattr(layer.self_attn, target)
                    for part in ("A", "B"):
                        weight = getattr(module, f"lora_{part}")[ADAPTER_NAME].weight
                        weight.copy_(checkpoint.lora[lora_key(layer_index, target, part)])
            self.memory_token_embed.weight.copy_(checkpoint.memory)

    def trainable_parameters(self) -> dict[str, nn.Parameter]:
        """LoRA matrices and memory embeddings: what training updates."""
        return {name: p for name, p in self.named_parameters()
                if "lora_" in name or name.startswith("memory_token_embed.")}

    def _set_adapter(self, active: bool) -> None:
        # peft's enable_adapters(False) also clears requires_grad, which would drop the LoRA
        # gradients of an encoder pass whose backward runs after the adapter is off again.
        for module in self._adapters:
            module._disable_adapters = not active

    @contextlib.contextmanager
    def adapter_enabled(self) -> Iterator[None]:
        """Run the block with the LoRA adapter on (the encoder); it is off afterwards."""
        self._set_adapter(True)
        try:
            yield
        finally:
            self._set_adapter(False)

    def compress(self, contexts: Sequence[Sequence[int]]) -> list[torch.Tensor]:
        """Slots ``[segments * k, hidden]`` of each context's encoder ids."""
        segments: list[Sequence[int]] = []
        owners: list[int] = []
        for index, ids in enumerate(contexts):
            for start, end in segment_bounds(len(ids), self.num_mem, self.mean_compression_rate):
                segments.append(ids[start:end])
                owners.append(index)
        encoded = self.encode_segments(segments)
        return [torch.cat([slots for slots, owner in zip(encoded, owners, strict=True)
                           if owner == index]) for index in range(len(contexts))]

    def encode_segments(self, segments: Sequence[Sequence[int]]) -> list[torch.Tensor]:
        """``[k, hidden]`` slots of each segment, each encoded on its own from position 0.

        Segments of equal length share one forward pass (no padding, no attention mask).
        """
        by_length: dict[int, list[int]] = {}
        for index, segment in enumerate(segments):
            by_length.setdefault(len(segment), []).append(index)
        slots: list[torch.Tensor | None] = [None] * len(segments)
        for length, members in by_length.items():
            hidden = self._encode_equal_length([segments[i] for i in members], length)
            for row, index in enumerate(members):
                slots[index] = hidden[row]
        return [s for s in slots if s is not None]

    def _encode_equal_length(self, segments: Sequence[Sequence[int]], length: int
                             ) -> torch.Tensor:
        k = self.num_mem
        memory_positions = segment_memory_positions(length, k)
        text_positions = [p for p in range(length + k) if p not in memory_positions]
        ids = torch.tensor([list(s) for s in segments], dtype=torch.long, device=self.device)
        text = input_embedding(self.base)(ids)
        inputs = text.new_zeros(len(segments), length + k, text.shape[-1])
        inputs[:, text_positions] = text
        inputs[:, memory_positions] = self.memory_token_embed.weight[:k].to(text.dtype)
        positions = torch.arange(length + k, device=self.device)[None].expand(len(segments), -1)
        with self.adapter_enabled():
            out = self.base.base_model(inputs_embeds=inputs, position_ids=positions,
                                       use_cache=False)
        hidden: torch.Tensor = out.last_hidden_state[:, memory_positions]
        return hidden

    def decoder_embeddings(self, ids: Sequence[int], slots: torch.Tensor) -> torch.Tensor:
        """Decoder input ``[len(ids), hidden]``: memory placeholders filled with ``slots`` in
        order, AE/LM/FT ids from ``memory_token_embed``, other ids from the base embedding."""
        tokens = torch.tensor(list(ids), dtype=torch.long, device=self.device)
        first = self.ids.first_memory
        is_memory = (tokens >= first) & (tokens < first + self.num_mem)
        is_special = tokens >= self.ids.ae
        if int(is_memory.sum()) != slots.shape[0]:
            raise ValueError(f"ICAE v2: the decoder ids hold {int(is_memory.sum())} memory "
                             f"placeholders for {slots.shape[0]} slots")
        base_ids = tokens.masked_fill(tokens >= first, 0)
        embeds: torch.Tensor = input_embedding(self.base)(base_ids).clone()
        embeds[is_memory] = slots.to(embeds.dtype)
        special_rows = tokens[is_special] - first
        embeds[is_special] = self.memory_token_embed(special_rows).to(embeds.dtype)
        return embeds

    def decoder_logits(self, embeds: torch.Tensor) -> torch.Tensor:
        """Base-model logits ``[batch, length, vocab]`` (adapter off, cut to the vocabulary)."""
        logits: torch.Tensor = self.base(inputs_embeds=embeds, use_cache=False).logits
        return logits[..., : self.ids.vocab_size]

    def loss(self, example: LossExample) -> torch.Tensor:
        """Training loss of one example: mean CE of ``logits[:, :-1]`` vs ``labels[:, 1:]``."""
        if len(example.prompt_answer_ids) != len(example.labels):
            raise ValueError("ICAE v2: prompt_answer_ids and labels differ in length")
        slots = self.compress([example.encoder_ids])[0]
        embeds = self.decoder_embeddings(example.prompt_answer_ids, slots)
        logits = self.decoder_logits(embeds[None])
        labels = torch.tensor(example.labels, dtype=torch.long, device=self.device)
        return F.cross_entropy(logits[0, :-1].float(), labels[1:], ignore_index=IGNORE_INDEX)
