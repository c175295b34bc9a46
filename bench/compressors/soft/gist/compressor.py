"""Gist tokens (Mu et al. 2023), computed as jayelm/gisting does for LLaMA.

The target model is itself the gist-fine-tuned LLaMA and its tokenizer carries the added
``<GIST>`` token. Compression is one causal forward pass over
``<s>Instruction: {context}\\n<GIST>..`` (k gist tokens, option ``num_gist_tokens``); each
layer's keys (rotary-encoded at their absolute positions) and values at the k gist positions
are the compressed context. Causal attention there equals the training-time gist mask
because the call ends with the gists.

The decoder reads the prompt after the gists (``\\nInput: {question}\\nOutput:``, or
``\\nOutput:`` for regeneration and question-less prompts), attending only to the gist states
and to itself, at the positions it has in the full prompt: the first one at
``gist_start + k``. The task's own instruction is not used: the model was trained with this
template, and the context takes the template's instruction slot.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from bench.compressors._api import (
    Capabilities,
    CompressionRequest,
    Family,
    Interval,
    TargetModel,
    option,
    parse_options,
    register_compressor,
)
from bench.compressors.soft.decode import DecoderItem, greedy_generate
from bench.compressors.soft.gist.checks import (
    bos_token_id,
    check_model,
    eos_token_ids,
    gist_token_id,
)
from bench.compressors.soft.gist.prompt import GistTokenizer
from bench.generation import DecoderPrompt, GenerationOutput, GenerationSettings
from bench.records import CompressedContext, CompressedKV, CompressionStats
from bench.substrate.errors import InputError

NAME = "gist"
PROMPT_KINDS = ("qa", "regeneration")


@dataclass(frozen=True)
class GistOptions:
    """Options of ``gist``."""

    num_gist_tokens: int = option(1, "gist tokens k, as many as the model was trained with")
    gist_token: str = option("<GIST>", "the gist token's text")
    batch_size: int = option(8, "prompts per decoding batch", accepts=Interval(1.0))


class Gist:
    """``gist``: the context is compressed into the key/value states of k gist tokens."""

    name = NAME
    version = "1"

    def __init__(self, target: TargetModel, options: GistOptions) -> None:
        if target.model is None:
            raise InputError("gist needs a neural target model (the gist-fine-tuned LLaMA)")
        if options.batch_size < 1:
            raise InputError(f"gist: batch_size must be >= 1, got {options.batch_size}")
        tokenizer = target.tokenizer
        gist_id = gist_token_id(tokenizer, options.gist_token, repr(target.name))
        check_model(target.model, gist_id, options.num_gist_tokens, repr(target.name))
        self.target = target
        self.model: Any = target.model
        self.options = options
        self.tokens = GistTokenizer(tokenizer, options.gist_token, gist_id,
                                    bos_token_id(tokenizer, repr(target.name)))
        self._eos = eos_token_ids(tokenizer, target.model)

    @property
    def num_gist_tokens(self) -> int:
        return self.options.num_gist_tokens

    def settings(self) -> dict[str, Any]:
        return {"num_gist_tokens": self.num_gist_tokens, "gist_token": self.options.gist_token,
                "gist_token_id": self.tokens.gist_id, "model": self.target.name}

    def compress(self, requests: Sequence[CompressionRequest]) -> list[CompressedContext]:
        return [self._compress_one(request.context) for request in requests]

    @torch.no_grad()
    def _compress_one(self, context: str) -> CompressedKV:
        began = time.perf_counter()
        ids = self.tokens.instruction_ids(context, self.num_gist_tokens)
        input_ids = torch.tensor([ids], dtype=torch.long, device=self.target.device)
        out = self.model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                         use_cache=True)
        k = self.num_gist_tokens
        layers = out.past_key_values.layers
        keys = tuple(layer.keys[0, :, -k:].detach().clone() for layer in layers)
        values = tuple(layer.values[0, :, -k:].detach().clone() for layer in layers)
        gist_start = len(ids) - k
        original = self.target.count_tokens(context)
        stats = CompressionStats(original, k, time.perf_counter() - began,
                                 encoded_tokens=original)
        return CompressedKV(keys, values, stats, position_offset=gist_start + k,
                            extra={"gist_start": gist_start, "instruction_tokens": len(ids)})

    def generate(self, items: Sequence[tuple[CompressedContext, DecoderPrompt]],
                 settings: GenerationSettings) -> list[GenerationOutput]:
        outputs: list[GenerationOutput] = []
        size = self.options.batch_size
        for start in range(0, len(items), size):
            chunk = [self.decoder_item(compressed, prompt)
                     for compressed, prompt in items[start:start + size]]
            outputs.extend(greedy_generate(self.model, self.target.tokenizer, chunk, settings,
                                           self._eos))
        return outputs

    def decoder_item(self, compressed: CompressedContext, prompt: DecoderPrompt) -> DecoderItem:
        """The decoder input: the prompt after the gists, over the gist key/value states."""
        if not isinstance(compressed, CompressedKV):
            raise TypeError(f"gist decodes CompressedKV, got {type(compressed).__name__}")
        slots = int(compressed.keys[0].shape[-2]) if compressed.keys else 0
        if slots != self.num_gist_tokens:
            raise ValueError(f"gist: the compressed context holds {slots} gist states but "
                             f"num_gist_tokens is {self.num_gist_tokens}")
        if prompt.kind not in PROMPT_KINDS:
            raise ValueError(f"gist: unknown prompt kind {prompt.kind!r}; "
                             f"expected one of {PROMPT_KINDS}")
        question = prompt.question if prompt.kind == "qa" else None
        return DecoderItem(prompt_ids=tuple(self.tokens.input_ids(question)),
                           keys=compressed.keys, values=compressed.values,
                           position_offset=compressed.position_offset)


@register_compressor(NAME, Capabilities(Family.SOFT_KV, budget_options=("num_gist_tokens",)))
def make_gist(target: TargetModel, options: Mapping[str, Any]) -> Gist:
    """Gist tokens: a gist-fine-tuned LLaMA compresses the context into k gist K/V states."""
    return Gist(target, parse_options(GistOptions, options, NAME))
