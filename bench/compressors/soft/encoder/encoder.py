"""The shared soft encoder: the base LM with a LoRA adapter plus k trainable memory slots.

The adapter is injected into the caller's model in place (no second copy) and kept DISABLED
except inside :meth:`SoftEncoder.adapter_enabled`, so every other user of the model, and the
decoder pass, sees the exact base model.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from transformers import PreTrainedModel

from bench.compressors.soft._cache import layer_states, recording_cache
from bench.compressors.soft._torch import input_embedding
from bench.substrate.errors import InputError

ADAPTER_NAME = "default"


@dataclass(frozen=True)
class LoraSettings:
    """LoRA hyper-parameters of the encoder (500xCompressor's defaults)."""

    r: int = 64
    alpha: int = 32
    dropout: float = 0.05
    target_modules: tuple[str, ...] = ("q_proj", "v_proj")


@dataclass
class EncoderOutput:
    """Memory of a batch: per-layer ``[batch, kv_heads, k, head_dim]`` states, the final
    hidden states ``[batch, k, hidden]``, each row's encoder positions of the memory slots and
    the position just after them."""

    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    hidden: torch.Tensor
    next_positions: list[int]
    memory_positions: list[list[int]]


def _has_lora(model: nn.Module) -> bool:
    from peft.tuners.lora import LoraLayer

    return any(isinstance(module, LoraLayer) for module in model.modules())


class SoftEncoder(nn.Module):
    """LoRA-adapted base model reading ``[context] [m_1 .. m_k]``.

    ``memory`` is ``[k, hidden]``; ``trigger`` (ICAE's regeneration cue) is ``[1, hidden]`` or
    None. Both are initialised from a seeded normal scaled to the embedding's std.
    """

    def __init__(self, model: PreTrainedModel, num_mem: int, lora: LoraSettings,
                 with_trigger: bool, seed: int) -> None:
        super().__init__()
        from peft import LoraConfig, get_peft_model

        if num_mem < 1:
            raise InputError(f"num_mem must be >= 1, got {num_mem}")
        if _has_lora(model):
            raise InputError("the base model already carries a LoRA adapter; load a fresh copy "
                             "of the base model for each soft compressor")
        config = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                            target_modules=list(lora.target_modules), bias="none")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.peft_model = get_peft_model(model, config, adapter_name=ADAPTER_NAME)
        from peft.tuners.lora import LoraLayer

        self._lora_modules = [m for m in model.modules() if isinstance(m, LoraLayer)]
        self._set_adapter(False)
        self.num_mem = num_mem
        embedding = input_embedding(model).weight
        generator = torch.Generator().manual_seed(seed)
        hidden = int(getattr(embedding, "ds_shape", embedding.shape)[1])
        init = torch.randn(num_mem + 1, hidden, generator=generator) * _embedding_std(embedding)
        # Separate storage: checkpoint writers refuse (or drop) tensors that share memory.
        self.memory = nn.Parameter(init[:num_mem].clone().to(embedding.device))
        self.trigger = (nn.Parameter(init[num_mem:].clone().to(embedding.device))
                        if with_trigger else None)

    @property
    def base(self) -> PreTrainedModel:
        """The base causal LM (the caller's model object)."""
        model: PreTrainedModel = self.peft_model.get_base_model()  # type: ignore[assignment]
        return model

    @contextlib.contextmanager
    def adapter_enabled(self) -> Iterator[None]:
        """Run the block with the LoRA adapter on; it is off again afterwards."""
        previous = self.adapter_active()
        self._set_adapter(True)
        try:
            yield
        finally:
            self._set_adapter(previous)

    def _lora_layers(self) -> list[Any]:
        return self._lora_modules

    def _set_adapter(self, active: bool) -> None:
        # peft's enable/disable_adapter_layers also flip requires_grad, which would drop the
        # LoRA gradients of an encoder pass whose backward runs after the adapter is off.
        for module in self._lora_layers():
            module._disable_adapters = not active

    def adapter_active(self) -> bool:
        """Whether the LoRA adapter currently changes the base model's outputs."""
        return any(not module._disable_adapters for module in self._lora_layers())

    def trainable_parameters(self) -> dict[str, nn.Parameter]:
        """Every parameter that training updates: LoRA, memory and trigger."""
        params = {f"lora.{name}": p for name, p in self.peft_model.named_parameters()
                  if "lora_" in name}
        params["memory"] = self.memory
        if self.trigger is not None:
            params["trigger"] = self.trigger
        return params

    def enable_gradient_checkpointing(self) -> None:
        """Per-layer checkpointing that replays each layer with the adapter state it ran with
        and keeps the (read-only or recording) caches the soft methods pass."""
        from transformers.modeling_layers import GradientCheckpointingLayer

        self.base.gradient_checkpointing_enable(  # type: ignore[no-untyped-call]
            gradient_checkpointing_kwargs={"use_reentrant": False})
        for module in self.base.modules():
            if isinstance(module, GradientCheckpointingLayer):
                module._can_checkpoint_with_cache = True
                module._gradient_checkpointing_func = functools.partial(  # type: ignore[assignment]
                    _replay_with_state, self)

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None
               ) -> EncoderOutput:
        """Encode contexts followed by the memory slots (see :meth:`forward`)."""
        output: EncoderOutput = self(input_ids, attention_mask)
        return output

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None
                ) -> EncoderOutput:
        """Encode contexts ``[batch, length]`` followed by the memory slots.

        With ``attention_mask`` (1 on real tokens, left padding) padded positions are masked
        and the positions count real tokens only; without it every id is attended and the
        positions run ``0 .. length+k-1``. The memory is read here, inside ``forward``, so that
        sharded strategies (FSDP, DeepSpeed ZeRO-3) gather it for the call.
        """
        embedding = input_embedding(self.base)
        embeds = embedding(input_ids)
        batch = input_ids.shape[0]
        memory = self.memory.to(embeds.dtype)[None].expand(batch, -1, -1)
        mask: torch.Tensor | None = None
        if attention_mask is None:
            total = input_ids.shape[1] + self.num_mem
            positions = torch.arange(total, device=input_ids.device).expand(batch, -1)
        else:
            embeds = embeds * attention_mask[..., None].to(embedding.weight.dtype)
            mask = torch.cat([attention_mask, attention_mask.new_ones(batch, self.num_mem)],
                             dim=1)
            positions = (mask.cumsum(dim=-1) - 1).clamp(min=0)
        inputs = torch.cat([embeds, memory], dim=1)
        cache = recording_cache(self.base.config.num_hidden_layers)
        with self.adapter_enabled():
            out = self.base.base_model(inputs_embeds=inputs, attention_mask=mask,
                                       position_ids=positions, past_key_values=cache,
                                       use_cache=True)
        keys, values = layer_states(cache)
        k = self.num_mem
        memory_positions = positions[:, -k:]
        return EncoderOutput(
            keys=[key[:, :, -k:] for key in keys],
            values=[value[:, :, -k:] for value in values],
            hidden=out.last_hidden_state[:, -k:],
            next_positions=[int(n) + 1 for n in memory_positions[:, -1].tolist()],
            memory_positions=[[int(p) for p in row] for row in memory_positions.tolist()],
        )


def _embedding_std(weight: torch.Tensor) -> float:
    """Std of the input embedding: gathered first when DeepSpeed ZeRO-3 partitioned it; 1.0 on
    the meta device (FSDP's memory-efficient loading, which then copies rank 0's values)."""
    if weight.is_meta:
        return 1.0
    if hasattr(weight, "ds_id"):
        import deepspeed

        with deepspeed.zero.GatheredParameters([weight]):
            return float(weight.detach().float().std())
    return float(weight.detach().float().std())


def _replay_with_state(encoder: SoftEncoder, function: Callable[..., Any], *args: Any,
                       **kwargs: Any) -> Any:
    from torch.utils.checkpoint import checkpoint

    active = encoder.adapter_active()

    def run(*inner: Any) -> Any:
        previous = encoder.adapter_active()
        encoder._set_adapter(active)
        try:
            return function(*inner)
        finally:
            encoder._set_adapter(previous)

    return checkpoint(run, *args, use_reentrant=False, **kwargs)


def pad_left(rows: Sequence[Sequence[int]], pad_id: int, device: torch.device
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-pad id lists into ``(ids, mask)`` tensors."""
    length = max(len(row) for row in rows)
    ids = torch.full((len(rows), length), pad_id, dtype=torch.long, device=device)
    mask = torch.zeros(len(rows), length, dtype=torch.long, device=device)
    for i, row in enumerate(rows):
        if row:
            ids[i, length - len(row):] = torch.tensor(list(row), dtype=torch.long, device=device)
            mask[i, length - len(row):] = 1
    return ids, mask
