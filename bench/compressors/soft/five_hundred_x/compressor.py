"""500xCompressor (Li et al. 2024): the memory reaches the decoder as key/value states.

The encoder (base LM + LoRA) reads the context followed by k memory slots; each layer's keys
and values at the memory positions become the frozen decoder's cache (adapter off). In the
default ``reference`` layout (:mod:`._layout`) the context is EOS-padded to
``context_length`` L without an attention mask, the memory sits at positions ``L..L+k-1`` and
the decoder's own tokens start at position k (the cache length), as in the published code.
In the ``compressbench`` layout the decoder continues after the memory's encoder positions
(``decoder_positions=continue``) or restarts at k (``restart``). Decoder prompts: the BOS token
for regeneration, ``"Question: {q} Answer: "`` for QA.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bench.compressors._api import (
    Capabilities,
    Family,
    TargetModel,
    parse_options,
    register_compressor,
)
from bench.compressors.soft.decode import DecoderItem
from bench.compressors.soft.encoder.compressor import SoftCompressor, SoftOptions, build_soft_model
from bench.compressors.soft.encoder.encoder import EncoderOutput
from bench.compressors.soft.encoder.model import SoftModel
from bench.generation import DecoderPrompt
from bench.records import CompressedContext, CompressedKV, CompressionStats

NAME = "500x"


class KVSoftModel(SoftModel):
    """Encoder whose memory is handed over as per-layer key/value states."""

    method = NAME

    def regeneration_prompt_ids(self) -> list[int]:
        return [self.ids.trigger]

    def decoder_start(self, memory: EncoderOutput, row: int) -> int:
        """Position of the decoder's first token after the memory of batch row ``row``."""
        if self.layout.decoder_positions == "continue":
            return memory.next_positions[row]
        return self.num_mem

    def decoder_input(self, memory: EncoderOutput, row: int, kind: str,
                      prompt_ids: Sequence[int]) -> DecoderItem:
        return DecoderItem(
            prompt_ids=tuple(prompt_ids),
            keys=tuple(layer[row] for layer in memory.keys),
            values=tuple(layer[row] for layer in memory.values),
            position_offset=self.decoder_start(memory, row),
        )


class FiveHundredX(SoftCompressor):
    """``500x``: compress to k slots of per-layer key/value states."""

    def record(self, memory: EncoderOutput, row: int, stats: CompressionStats,
               extra: dict[str, Any]) -> CompressedContext:
        return CompressedKV(
            keys=tuple(layer[row].detach() for layer in memory.keys),
            values=tuple(layer[row].detach() for layer in memory.values),
            stats=stats,
            position_offset=self._kv_model().decoder_start(memory, row),
            extra=extra,
        )

    def _kv_model(self) -> KVSoftModel:
        assert isinstance(self.model, KVSoftModel)
        return self.model

    def decoder_item(self, compressed: CompressedContext, prompt: DecoderPrompt) -> DecoderItem:
        if not isinstance(compressed, CompressedKV):
            raise TypeError(f"500x decodes CompressedKV, got {type(compressed).__name__}")
        return DecoderItem(
            prompt_ids=tuple(self.model.prompt_ids(prompt.kind, prompt.question)),
            keys=compressed.keys,
            values=compressed.values,
            position_offset=compressed.position_offset,
        )


@register_compressor(NAME, Capabilities(Family.SOFT_KV, budget_options=("num_mem",)))
def make_500x(target: TargetModel, options: Mapping[str, Any]) -> FiveHundredX:
    """500xCompressor: LoRA encoder, k memory slots handed over as a KV cache."""
    parsed = parse_options(SoftOptions, options, NAME)
    model, source = build_soft_model(KVSoftModel, target, parsed)
    return FiveHundredX(NAME, target, model, parsed, source)
