"""AutoCompressors (Chevalier et al. 2023): the target model summarises the context itself.

``--model compressed --model_args pretrained=AUTOCOMPRESSOR,compressor=autocompressor``: the
target model is a fine-tuned AutoCompressor (e.g. ``princeton-nlp/AutoCompressor-Llama-2-7b-6k``),
loaded as a plain causal LM; its ``summary_length``, ``accumulate_summary`` and
``embed_summary.weight`` are read from the checkpoint (:mod:`.autocompressor_checkpoint`).

Compression (:mod:`.autocompressor_summary`): the context is tokenized with the tokenizer's
special tokens (``<s>`` first on Llama), cut to ``max_context_tokens`` and split into segments;
each segment yields ``summary_length`` summary vectors, accumulated oldest first. The
compressed form is that softprompt (``CompressedEmbeddings``; ``compressed_tokens`` = its
length).

Decoding, for every prompt kind: ``[softprompt] + prompt tokens`` at positions ``0, 1, ...``
(the softprompt at ``0..k-1``, the first prompt token at ``k``), then greedy tokens until EOS.
The prompt tokens are the text the uncompressed prompt has after the context (the task's
question and answer cue, e.g. ``"Question: {q} Answer:"``, or ``"Repeated text:"`` for
regeneration) with leading whitespace removed, tokenized without special tokens: no ``<s>``
after the softprompt, as in the reference's examples. The instruction before the context is
not used (the softprompt always starts the sequence).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
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
from bench.compressors.soft._prompts import generation_eos_ids, text_ids
from bench.compressors.soft.autocompressor.checkpoint import (
    SummarySpec,
    load_summary_spec,
    weights_digest,
)
from bench.compressors.soft.autocompressor.summary import (
    SummaryEncoder,
    chunk_ids,
    split_segments,
)
from bench.compressors.soft.decode import DecoderItem, greedy_generate_in_batches, prompt_embeddings
from bench.generation import DecoderPrompt, GenerationOutput, GenerationSettings
from bench.records import CompressedContext, CompressedEmbeddings, CompressionStats
from bench.substrate.errors import InputError

NAME = "autocompressor"


@dataclass(frozen=True)
class AutoCompressorOptions:
    """Options of ``autocompressor``."""

    segment_length: int | None = option(
        None, "context tokens per compression segment (<s> counted in the first); each "
        "segment adds summary_length vectors; a context longer than the model's window needs "
        "one (the published Llama-2 model was trained on segments of about 1,536 tokens)",
        accepts=Interval(1.0),
        shown_default="the mean segment length the checkpoint's config.json records, else "
        "none: the whole context is one segment, as in the reference's evaluation")
    max_context_tokens: int | None = option(
        None, "the context is cut to its first N ids (<s> included) before segmenting",
        accepts=Interval(1.0), shown_default="none: no cut")
    batch_size: int = option(8, "contexts compressed, and prompts decoded, per forward batch",
                             accepts=Interval(1.0))


class AutoCompressor:
    """``autocompressor``: summary vectors of the target AutoCompressor as a softprompt."""

    name = NAME
    version = "1"

    def __init__(self, target: TargetModel, options: AutoCompressorOptions,
                 spec: SummarySpec) -> None:
        if target.model is None:
            raise InputError(f"{NAME}: needs the AutoCompressor as the neural target model")
        for field in ("segment_length", "max_context_tokens", "batch_size"):
            value = getattr(options, field)
            if value is not None and value < 1:
                raise InputError(f"{NAME}: option {field} must be >= 1, got {value}")
        self.target = target
        self.model = target.model
        self.options = options
        self.spec = spec
        self.encoder = SummaryEncoder(target.model, spec)
        self._eos = generation_eos_ids(target.tokenizer, target.model)

    @property
    def segment_length(self) -> int | None:
        """The option, else the segment length the checkpoint was trained on (if recorded)."""
        return self.options.segment_length or self.spec.training_segment_length

    @cached_property
    def _weights_sha256(self) -> str:
        return weights_digest(self.spec.weight_files)

    def settings(self) -> dict[str, Any]:
        return {"segment_length": self.segment_length,
                "max_context_tokens": self.options.max_context_tokens,
                "summary_length": self.spec.summary_length,
                "accumulate_summary": self.spec.accumulate,
                "weights_sha256": self._weights_sha256}

    def context_segments(self, context: str) -> tuple[list[list[int]], bool]:
        """The id segments the context is compressed in, and whether it was cut."""
        ids = chunk_ids(self.target.tokenizer, [context])[0]
        limit = self.options.max_context_tokens
        truncated = limit is not None and len(ids) > limit
        return split_segments(ids[:limit], self.segment_length), truncated

    def compress(self, requests: Sequence[CompressionRequest]) -> list[CompressedContext]:
        results: list[CompressedContext] = []
        size = self.options.batch_size
        for start in range(0, len(requests), size):
            chunk = requests[start:start + size]
            began = time.perf_counter()
            cut = [self.context_segments(request.context) for request in chunk]
            softprompts = self.encoder.compress([segments for segments, _ in cut])
            seconds = (time.perf_counter() - began) / len(chunk)
            for request, (segments, truncated), softprompt in zip(chunk, cut, softprompts,
                                                                  strict=True):
                results.append(self._record(request.context, segments, softprompt, seconds,
                                            truncated))
        return results

    def compress_chunks(self, chunks: Sequence[str],
                        segment_lengths: Sequence[Sequence[int] | None] | None = None
                        ) -> CompressedEmbeddings:
        """One context given as chunks, compressed in successive calls (``evaluate_icl.py``).

        Each call reads one chunk (``<s>`` only before the first) after the softprompt of the
        earlier chunks; ``segment_lengths[i]`` splits chunk ``i`` (default:
        :attr:`segment_length`). ``max_context_tokens`` does not apply.
        """
        began = time.perf_counter()
        softprompt: torch.Tensor | None = None
        all_segments: list[list[int]] = []
        for index, ids in enumerate(chunk_ids(self.target.tokenizer, chunks)):
            lengths = self.segment_length if segment_lengths is None \
                else segment_lengths[index]
            segments = split_segments(ids, lengths)
            softprompt = self.encoder.compress([segments], [softprompt])[0]
            all_segments.extend(segments)
        assert softprompt is not None, "compress_chunks needs at least one chunk"
        context = " ".join(chunks)
        return self._record(context, all_segments, softprompt, time.perf_counter() - began,
                            truncated=False)

    def _record(self, context: str, segments: Sequence[Sequence[int]], softprompt: torch.Tensor,
                seconds: float, truncated: bool) -> CompressedEmbeddings:
        original = self.target.count_tokens(context)
        read = sum(len(segment) for segment in segments)
        added = len(chunk_ids(self.target.tokenizer, [""])[0])  # <s> on Llama
        stats = CompressionStats(original, int(softprompt.shape[0]), seconds,
                                 encoded_tokens=read - added if truncated else original)
        extra = {"segments": len(segments), "context_ids": read, "truncated": truncated}
        return CompressedEmbeddings(softprompt.detach(), stats, extra)

    def prompt_ids(self, prompt: DecoderPrompt) -> list[int]:
        """Ids after the softprompt: the prompt's suffix without leading whitespace."""
        return text_ids(self.target.tokenizer, prompt.suffix.lstrip())

    def decoder_item(self, compressed: CompressedContext, prompt: DecoderPrompt) -> DecoderItem:
        """``[softprompt] + prompt ids``, the softprompt's first vector at position 0."""
        if not isinstance(compressed, CompressedEmbeddings):
            raise TypeError(f"{NAME} decodes CompressedEmbeddings, got "
                            f"{type(compressed).__name__}")
        return DecoderItem(prompt_ids=tuple(self.prompt_ids(prompt)),
                           embeds=compressed.embeddings, position_offset=0)

    def decoder_input_embeddings(self, compressed: CompressedContext, prompt: DecoderPrompt
                                 ) -> torch.Tensor:
        """``[softprompt + prompt tokens, hidden]``, as :meth:`generate` feeds it."""
        item = self.decoder_item(compressed, prompt)
        return prompt_embeddings(self.model, item)  # type: ignore[arg-type]

    def stop_token_ids(self) -> list[int]:
        return list(self._eos)

    def generate(self, items: Sequence[tuple[CompressedContext, DecoderPrompt]],
                 settings: GenerationSettings) -> list[GenerationOutput]:
        return greedy_generate_in_batches(self.model, self.target.tokenizer,  # type: ignore[arg-type]
                                          items, self.decoder_item, self.options.batch_size,
                                          settings, self._eos)


def model_location(target: TargetModel) -> str:
    """Where the target model's weights are: its local folder, else its hub id."""
    configured = str(getattr(getattr(target.model, "config", None), "name_or_path", "") or "")
    for candidate in (configured, target.name):
        if candidate and Path(candidate).is_dir():
            return candidate
    return configured or target.name


@register_compressor(NAME, Capabilities(Family.SOFT_EMBEDDINGS, prompt_embeds=True))
def make_autocompressor(target: TargetModel, options: Mapping[str, Any]) -> AutoCompressor:
    """AutoCompressor summary vectors (the target model must be an AutoCompressor)."""
    parsed = parse_options(AutoCompressorOptions, options, NAME)
    if target.model is None:
        raise InputError(f"{NAME}: needs the AutoCompressor as the neural target model")
    spec = load_summary_spec(target.model, model_location(target))
    target.model.eval()  # type: ignore[no-untyped-call]
    return AutoCompressor(target, parsed, spec)
