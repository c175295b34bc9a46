"""ICAE (Ge et al. 2024): the memory reaches the decoder as input embeddings.

The encoder is the one of 500x; the final-layer hidden states of the k memory positions are
the first k input vectors of the frozen decoder (positions ``0..k-1``). Regeneration appends
a trainable trigger embedding after them; QA appends ``"Question: {q} Answer: "``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from bench.compressors._api import TargetModel, parse_options, register_compressor
from bench.compressors.soft._compressor import SoftCompressor, SoftOptions, build_soft_model
from bench.compressors.soft._decode import DecoderItem
from bench.compressors.soft._encoder import EncoderOutput
from bench.compressors.soft._model import SoftModel
from bench.generation import DecoderPrompt
from bench.records import CompressedContext, CompressedEmbeddings, CompressionStats

NAME = "icae"


class EmbeddingSoftModel(SoftModel):
    """Encoder whose memory is handed over as input embeddings."""

    method = NAME
    uses_trigger = True

    def regeneration_prompt_ids(self) -> list[int]:
        return []

    def decoder_embeds(self, slots: torch.Tensor, kind: str) -> torch.Tensor:
        """Decoder input vectors: the memory slots, then the trigger for regeneration."""
        trigger = self.encoder.trigger
        if kind == "regeneration" and trigger is not None:
            return torch.cat([slots, trigger.to(slots.dtype)])
        return slots

    def decoder_input(self, memory: EncoderOutput, row: int, kind: str,
                      prompt_ids: Sequence[int]) -> DecoderItem:
        embeds = self.decoder_embeds(memory.hidden[row], kind)
        return DecoderItem(prompt_ids=tuple(prompt_ids), embeds=embeds)


class Icae(SoftCompressor):
    """``icae``: compress to k memory vectors fed as input embeddings."""

    def record(self, memory: EncoderOutput, row: int, stats: CompressionStats,
               extra: dict[str, Any]) -> CompressedContext:
        return CompressedEmbeddings(memory.hidden[row].detach(), stats, extra)

    def decoder_item(self, compressed: CompressedContext, prompt: DecoderPrompt) -> DecoderItem:
        if not isinstance(compressed, CompressedEmbeddings):
            raise TypeError(f"icae decodes CompressedEmbeddings, got {type(compressed).__name__}")
        model = self.model
        assert isinstance(model, EmbeddingSoftModel)
        with torch.no_grad():
            embeds = model.decoder_embeds(compressed.embeddings, prompt.kind)
        return DecoderItem(prompt_ids=tuple(model.prompt_ids(prompt.kind, prompt.question)),
                           embeds=embeds.detach())


@register_compressor(NAME)
def make_icae(target: TargetModel, options: Mapping[str, Any]) -> Icae:
    """ICAE: LoRA encoder, k memory slots handed over as input embeddings."""
    parsed = parse_options(SoftOptions, options, NAME)
    return Icae(NAME, target, build_soft_model(EmbeddingSoftModel, target, parsed), parsed)
