"""ICAE v2 (Ge et al. 2024, multi-span) as its published code runs it, with its released
checkpoints (``sggetao/icae``: ``mistral_7b_pretrained_icae.safetensors`` and
``mistral_7b_ft_icae.safetensors``).

The context (``[BOS] + ids``, at most ``max_context_tokens``) is cut into segments of about
``k * mean_compression_rate`` ids; each segment is encoded on its own with k memory tokens
appended, and the k final hidden states of each become its slots. The base model then decodes
from ``[slots, AE]`` (regeneration) or ``[BOS] [INST] slots FT question [/INST]`` (QA).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

from bench.compressors._api import (
    CompressionRequest,
    Interval,
    TargetModel,
    option,
    parse_options,
)
from bench.compressors.soft._prompts import generation_eos_ids
from bench.compressors.soft.icae_v2.checkpoint import IcaeV2Checkpoint, read_checkpoint
from bench.compressors.soft.icae_v2.generate import GreedyResult, StopCheck, greedy_ids
from bench.compressors.soft.icae_v2.layout import (
    DecoderLayout,
    PromptTokens,
    encoder_ids,
    qa_layout,
    regeneration_layout,
    segment_bounds,
    text_ids,
)
from bench.compressors.soft.icae_v2.model import IcaeV2Lora, IcaeV2Model, base_shape
from bench.generation import DecoderPrompt, GenerationOutput, GenerationSettings
from bench.records import CompressedContext, CompressedEmbeddings, CompressionStats
from bench.substrate.errors import InputError

NAME = "icae"
VARIANT = "v2"
MODES = ("finetuned", "pretrained")
UNTRAINED_NUM_MEM = 128


@dataclass(frozen=True)
class IcaeV2Options:
    """Options of ICAE v2 (``icae``, ``variant=v2``)."""

    checkpoint: str | None = option(
        None, "a released-format .safetensors file, or a folder holding exactly one",
        shown_default="none: the LoRA and memory freshly initialised from seed, for tests only")
    num_mem: int | None = option(
        None, "memory slots k per segment; a value other than the checkpoint's is an error",
        accepts=Interval(1.0), shown_default="the checkpoint's memory_token_embed rows - 3, "
        f"else {UNTRAINED_NUM_MEM}")
    lora_r: int | None = option(
        None, "LoRA rank; a value other than the checkpoint's is an error",
        accepts=Interval(1.0), shown_default=f"the checkpoint's, else {IcaeV2Lora.r}")
    lora_alpha: int = option(IcaeV2Lora.alpha, "LoRA alpha (the published scripts')",
                             accepts=Interval(1.0))
    mean_compression_rate: int = option(4, "context ids per slot; the segment length is k "
                                        "times it", accepts=Interval(1.0))
    mode: str = option(MODES[0], "the prompt of QA requests: finetuned ([INST] prompt with "
                       "the FT embedding, for the fine-tuned checkpoint) or pretrained ([slots, "
                       "AE], the pretrained checkpoint's only prompt: the question is not "
                       "seen); regeneration always uses [slots, AE]")
    max_context_tokens: int = option(5120, "encoder ids read, BOS included (the published "
                                     "model_max_length)", accepts=Interval(1.0))
    batch_size: int = option(8, "contexts per encoder and decoder batch", accepts=Interval(1.0))
    seed: int = option(0, "initialisation seed without a checkpoint")


def _validate(options: IcaeV2Options) -> None:
    if options.mode not in MODES:
        raise InputError(f"icae v2: mode must be one of {', '.join(MODES)}, got {options.mode!r}")
    for field in ("mean_compression_rate", "max_context_tokens", "batch_size", "lora_alpha"):
        if getattr(options, field) < 1:
            raise InputError(f"icae v2: option {field} must be >= 1")


def _from_checkpoint(name: str, requested: int | None, found: int, checkpoint: str) -> int:
    if requested is not None and requested != found:
        raise InputError(f"icae v2: {name}={requested} but checkpoint {checkpoint} has "
                         f"{name}={found}; drop the option or pass the matching checkpoint")
    return found


def build_model(target: TargetModel, options: IcaeV2Options
                ) -> tuple[IcaeV2Model, IcaeV2Checkpoint | None]:
    """The ICAE v2 model on the target model, loaded from the checkpoint when one is given."""
    if target.model is None:
        raise InputError("icae v2 needs a neural target model (target.model)")
    if options.checkpoint is None:
        warnings.warn("icae v2: no checkpoint given; the LoRA and memory embeddings are freshly "
                      "initialised (seeded), so the slots carry no learned information",
                      UserWarning, stacklevel=3)
        lora = IcaeV2Lora(r=options.lora_r or IcaeV2Lora.r, alpha=options.lora_alpha)
        model = IcaeV2Model(target.model, options.num_mem or UNTRAINED_NUM_MEM,
                            options.mean_compression_rate, lora, options.seed)
        return model.eval(), None
    checkpoint = read_checkpoint(options.checkpoint, base_shape(target.model))
    k = _from_checkpoint("num_mem", options.num_mem, checkpoint.num_mem, options.checkpoint)
    r = _from_checkpoint("lora_r", options.lora_r, checkpoint.rank, options.checkpoint)
    model = IcaeV2Model(target.model, k, options.mean_compression_rate,
                        IcaeV2Lora(r=r, alpha=options.lora_alpha), options.seed)
    model.load_checkpoint(checkpoint)
    return model.eval(), checkpoint


class IcaeV2:
    """``icae`` variant ``v2``: multi-span slots fed to the base model as input embeddings."""

    name = NAME
    version = "v2-1"

    def __init__(self, target: TargetModel, options: IcaeV2Options) -> None:
        _validate(options)
        self.target = target
        self.options = options
        self.model, self.checkpoint = build_model(target, options)
        self.tokens = PromptTokens.from_tokenizer(target.tokenizer)
        self.eos_ids = sorted({self.tokens.eos,
                               *generation_eos_ids(target.tokenizer, target.model)})

    def settings(self) -> dict[str, Any]:
        settings = asdict(self.options)
        settings.pop("batch_size")
        settings.update(variant=VARIANT, num_mem=self.model.num_mem, lora_r=self.model.lora.r,
                        lora_alpha=self.model.lora.alpha)
        if self.checkpoint is not None:
            settings.update(checkpoint=str(self.checkpoint.path),
                            checkpoint_sha256=self.checkpoint.sha256)
        return settings

    def encoder_ids(self, context: str) -> list[int]:
        """The ids the encoder reads for ``context``."""
        return encoder_ids(self.target.tokenizer, self.tokens, context,
                           self.options.max_context_tokens)

    def segment_lengths(self, encoder_length: int) -> list[int]:
        """Lengths of the segments a context of ``encoder_length`` ids is cut into."""
        bounds = segment_bounds(encoder_length, self.model.num_mem,
                                self.options.mean_compression_rate)
        return [end - start for start, end in bounds]

    def compress(self, requests: Sequence[CompressionRequest]) -> list[CompressedContext]:
        results: list[CompressedContext] = []
        size = self.options.batch_size
        for start in range(0, len(requests), size):
            chunk = requests[start:start + size]
            began = time.perf_counter()
            rows = [self.encoder_ids(request.context) for request in chunk]
            with torch.no_grad():
                slots = self.model.compress(rows)
            seconds = (time.perf_counter() - began) / len(chunk)
            for request, ids, row_slots in zip(chunk, rows, slots, strict=True):
                results.append(self._record(request, ids, row_slots, seconds))
        return results

    def _record(self, request: CompressionRequest, ids: list[int], slots: torch.Tensor,
                seconds: float) -> CompressedEmbeddings:
        original = self.target.count_tokens(request.context)
        added = len(self.tokens.with_bos([]))
        stats = CompressionStats(original, int(slots.shape[0]), seconds,
                                 requested_rate=1.0 / self.options.mean_compression_rate,
                                 encoded_tokens=len(ids) - added)
        readable = added + original
        extra = {"encoder_tokens": len(ids), "segment_lengths": self.segment_lengths(len(ids)),
                 "truncated": readable > self.options.max_context_tokens}
        return CompressedEmbeddings(slots.detach(), stats, extra)

    def decoder_layout(self, slots: int, prompt: DecoderPrompt) -> DecoderLayout:
        """The decoder ids around ``slots`` slots for this prompt (see ``mode``)."""
        if prompt.kind not in ("qa", "regeneration"):
            raise ValueError(f"icae v2: unknown prompt kind {prompt.kind!r}; expected qa or "
                             "regeneration")
        if prompt.kind == "regeneration" or self.options.mode == "pretrained":
            return regeneration_layout(self.model.ids, slots)
        if prompt.question is None:
            raise ValueError("icae v2: a QA prompt needs the question")
        question = text_ids(self.target.tokenizer, prompt.question)
        return qa_layout(self.model.ids, self.tokens, slots, question)

    def decoder_input(self, compressed: CompressedContext, prompt: DecoderPrompt
                      ) -> torch.Tensor:
        """Decoder input embeddings ``[length, hidden]`` of one compressed context."""
        if not isinstance(compressed, CompressedEmbeddings):
            raise TypeError(f"icae v2 decodes CompressedEmbeddings, got "
                            f"{type(compressed).__name__}")
        slots = compressed.embeddings.to(self.model.device)
        layout = self.decoder_layout(int(slots.shape[0]), prompt)
        with torch.no_grad():
            return self.model.decoder_embeddings(layout.ids, slots)

    def decoder_input_embeddings(self, compressed: CompressedContext, prompt: DecoderPrompt
                                 ) -> torch.Tensor:
        """What :meth:`generate` decodes from (:meth:`decoder_input`)."""
        return self.decoder_input(compressed, prompt)

    def stop_token_ids(self) -> list[int]:
        return list(self.eos_ids)

    def generate_ids(self, items: Sequence[tuple[CompressedContext, DecoderPrompt]],
                     settings: GenerationSettings) -> list[GreedyResult]:
        """Greedy token ids of each item (EOS reported in ``stopped_at_eos``)."""
        results: list[GreedyResult] = []
        size = self.options.batch_size
        for start in range(0, len(items), size):
            embeds = [self.decoder_input_embeddings(c, p) for c, p in items[start:start + size]]
            results.extend(greedy_ids(self.model.base, embeds, settings.max_new_tokens,
                                      self.eos_ids, self.model.ids.vocab_size,
                                      self._stop_check(settings)))
        return results

    def _stop_check(self, settings: GenerationSettings) -> StopCheck | None:
        if not settings.until:
            return None

        def hits_stop(ids: list[int]) -> bool:
            text = self._text(ids)
            return settings.cut_at_stop(text) != text

        return hits_stop

    def _text(self, ids: Sequence[int]) -> str:
        return str(self.target.tokenizer.decode(list(ids), skip_special_tokens=True))

    def generate(self, items: Sequence[tuple[CompressedContext, DecoderPrompt]],
                 settings: GenerationSettings) -> list[GenerationOutput]:
        return [GenerationOutput(settings.cut_at_stop(self._text(r.token_ids)),
                                 len(r.token_ids), r.seconds, r.ttft_seconds)
                for r in self.generate_ids(items, settings)]


def make_icae_v2(target: TargetModel, options: Mapping[str, Any]) -> IcaeV2:
    """ICAE v2 with the published layout; ``options`` as in :class:`IcaeV2Options`."""
    return IcaeV2(target, parse_options(IcaeV2Options, options, f"{NAME} (variant {VARIANT})"))
