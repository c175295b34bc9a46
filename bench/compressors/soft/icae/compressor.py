"""ICAE (Ge et al. 2024): the memory reaches the decoder as input embeddings.

``variant=v2`` (default) is ICAE v2 (:mod:`.icae_v2`). ``variant=500x-baseline`` is the ICAE
baseline of the 500xCompressor code, implemented here: the encoder is the one of 500x (same
layouts, :mod:`._layout`); the final-norm hidden states of the k memory positions are the
first k input vectors of the frozen decoder (positions ``0..k-1``, adapter off, no cache).
Regeneration appends the learned AE embedding (the ``trigger``) after them; QA appends
``"Question: {q} Answer: "``. ``python -m bench.train --method icae`` trains this variant.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from bench.compressors._api import (
    Capabilities,
    Compressor,
    Family,
    TargetModel,
    parse_options,
    register_compressor,
)
from bench.compressors.soft.decode import DecoderItem, prompt_embeddings
from bench.compressors.soft.encoder.compressor import SoftCompressor, SoftOptions, build_soft_model
from bench.compressors.soft.encoder.encoder import EncoderOutput
from bench.compressors.soft.encoder.model import SoftModel
from bench.generation import DecoderPrompt
from bench.records import CompressedContext, CompressedEmbeddings, CompressionStats
from bench.substrate.errors import InputError

NAME = "icae"
VARIANTS = ("v2", "500x-baseline")
BASELINE = "500x-baseline"
V2_MODULE = "bench.compressors.soft.icae_v2.compressor"


class EmbeddingSoftModel(SoftModel):
    """Encoder whose memory is handed over as input embeddings."""

    method = NAME
    uses_trigger = True

    def regeneration_prompt_ids(self) -> list[int]:
        return []

    def decoder_prefix_length(self, kind: str) -> int:
        return self.num_mem + (1 if kind == "regeneration" else 0)

    def decoder_embeds(self, slots: torch.Tensor, kind: str) -> torch.Tensor:
        """Decoder input vectors: the memory slots, then the trigger for regeneration."""
        trigger = self.encoder.trigger
        if kind != "regeneration" or trigger is None:
            return slots
        if self.missing_trigger_source is not None:
            raise InputError(f"{self.missing_trigger_source}: has no ae_embedding, which icae "
                             "regeneration needs; use the regeneration checkpoint")
        return torch.cat([slots, trigger.to(slots.dtype)])

    def decoder_input(self, memory: EncoderOutput, row: int, kind: str,
                      prompt_ids: Sequence[int]) -> DecoderItem:
        embeds = self.decoder_embeds(memory.hidden[row], kind)
        return DecoderItem(prompt_ids=tuple(prompt_ids), embeds=embeds)


class Icae(SoftCompressor):
    """``icae`` (``variant=500x-baseline``): k memory vectors fed as input embeddings."""

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "variant": BASELINE}

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

    def decoder_input_embeddings(self, compressed: CompressedContext, prompt: DecoderPrompt
                                 ) -> torch.Tensor:
        """The decoder's input ``[slots (+ trigger) + prompt tokens, hidden]``, as
        :meth:`generate` feeds it (:func:`.decode.prompt_embeddings`)."""
        return prompt_embeddings(self._decoder, self.decoder_item(compressed, prompt))

    def stop_token_ids(self) -> list[int]:
        return list(self._eos)


def make_icae_baseline(target: TargetModel, options: Mapping[str, Any]) -> Icae:
    """The ICAE baseline of the 500xCompressor code (see the module docstring)."""
    parsed = parse_options(SoftOptions, options, NAME)
    model, source = build_soft_model(EmbeddingSoftModel, target, parsed)
    return Icae(NAME, target, model, parsed, source)


@register_compressor(NAME, Capabilities(Family.SOFT_EMBEDDINGS,
                                        budget_options=("num_mem", "mean_compression_rate"),
                                        prompt_embeds=True))
def make_icae(target: TargetModel, options: Mapping[str, Any]) -> Compressor:
    """ICAE: ``variant=v2`` (ICAE v2, the options below) or ``variant=500x-baseline`` (the
    500xCompressor code's ICAE baseline, with the options of ``500x`` except
    ``decoder_positions``)."""
    rest = dict(options)
    variant = str(rest.pop("variant", "v2"))
    if variant == BASELINE:
        return make_icae_baseline(target, rest)
    if variant != "v2":
        raise InputError(f"icae: option variant must be one of {', '.join(VARIANTS)}, "
                         f"got {variant!r}")
    try:
        module = importlib.import_module(V2_MODULE)
    except ModuleNotFoundError as error:
        if error.name != V2_MODULE:
            raise
        raise InputError(f"icae: variant=v2 is not available in this installation ({V2_MODULE} "
                         f"is missing); pass variant={BASELINE}") from None
    compressor: Compressor = module.make_icae_v2(target, rest)
    return compressor
