"""The ``Compressor`` + ``SoftDecoder`` front end shared by the encoder-based methods."""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedModel

from bench.compressors._api import CompressionRequest, Interval, TargetModel, option
from bench.compressors.soft.decode import DecoderItem, greedy_generate, greedy_ids
from bench.compressors.soft.encoder import checkpoint as ckpt
from bench.compressors.soft.encoder import repo_checkpoint as repo
from bench.compressors.soft.encoder.encoder import EncoderOutput, LoraSettings
from bench.compressors.soft.encoder.layout import Layout
from bench.compressors.soft.encoder.model import SoftModel
from bench.generation import DecoderPrompt, GenerationOutput, GenerationSettings
from bench.records import CompressedContext, CompressionStats
from bench.substrate.errors import InputError
from bench.substrate.hashing import sha256_file

DEFAULT_NUM_MEM = 4


_DEFAULT_LAYOUT = Layout()


@dataclass(frozen=True)
class SoftOptions:
    """Options of ``500x`` and ``icae`` (``variant=500x-baseline``)."""

    num_mem: int | None = option(None, "memory slots k", accepts=Interval(1.0),
                                 shown_default=f"the checkpoint's, else {DEFAULT_NUM_MEM}")
    checkpoint: str | None = option(
        None, "trained weights: a compressbench checkpoint folder or a 500x-repo "
        "pytorch_model.bin (the file or its folder)",
        shown_default="none: freshly initialised weights, for tests only")
    checkpoint_format: str | None = option(None, f"{' or '.join(ckpt.FORMATS)}",
                                           shown_default="detected from the checkpoint")
    layout: str | None = option(None, "reference (the 500xCompressor code's) or compressbench "
                                "(BOS + context, left padding with a mask)",
                                shown_default="the checkpoint's, else reference")
    context_length: int | None = option(
        None, "the reference layout's padded encoder length", accepts=Interval(1.0),
        shown_default=f"the checkpoint's, else {_DEFAULT_LAYOUT.context_length}")
    max_context_tokens: int | None = option(
        None, "context tokens the encoder reads, for every request kind",
        accepts=Interval(1.0),
        shown_default=f"the checkpoint's, else {_DEFAULT_LAYOUT.max_context_tokens} (the "
        "500xCompressor QA setting)")
    decoder_positions: str | None = option(
        None, "500x with layout=compressbench: continue or restart the decoder's positions "
        "after the memory", shown_default="the checkpoint's, else continue")
    lora_alpha: int | None = option(None, "LoRA alpha of a 500x-repo checkpoint, which does not "
                                    "record it", shown_default=str(repo.LORA_ALPHA))
    lora_dropout: float | None = option(None, "LoRA dropout of a 500x-repo checkpoint, which "
                                        "does not record it", accepts=Interval(0.0, 1.0),
                                        shown_default=f"{repo.LORA_DROPOUT:g}")
    batch_size: int = option(8, "contexts per encoder and decoder batch", accepts=Interval(1.0))
    seed: int = option(0, "initialisation seed without a checkpoint")


@dataclass(frozen=True)
class WeightsSource:
    """Where the trained weights came from: the checkpoint format and the file read."""

    format: str
    file: Path


def eos_ids(target: TargetModel, model: SoftModel) -> list[int]:
    """Ids that end generation (:func:`._prompts.repo_stop_ids`)."""
    from bench.compressors.soft._prompts import repo_stop_ids

    return sorted({model.ids.eos, *repo_stop_ids(target.tokenizer, target.model)})


def requested_layout(method: str, options: SoftOptions, recorded: Layout | None = None,
                     where: str = "") -> Layout:
    """The layout: the options on top of the checkpoint's (or the defaults)."""
    if options.decoder_positions is not None and method != "500x":
        raise InputError(f"{method}: decoder_positions applies to 500x only")
    if recorded is not None:
        for field in ("layout", "context_length", "decoder_positions"):
            asked = getattr(options, field)
            have = getattr(recorded, "name" if field == "layout" else field)
            if asked is not None and asked != have:
                raise ckpt.CheckpointMismatchError(f"{where}: trained with {field}={have}, "
                                                   f"asked for {asked}")
        if options.max_context_tokens is None:
            return recorded
        return replace(recorded, max_context_tokens=options.max_context_tokens)
    name = options.layout or "reference"
    if name == "compressbench" and options.context_length is not None:
        raise InputError("context_length applies to layout=reference only")
    positions = options.decoder_positions
    if name == "compressbench" and positions is None:
        positions = "continue"
    sizes = {field: getattr(options, field) for field in ("context_length", "max_context_tokens")
             if getattr(options, field) is not None}
    return Layout(name=name, decoder_positions=positions, **sizes)


def build_soft_model(model_type: type[SoftModel], target: TargetModel, options: SoftOptions
                     ) -> tuple[SoftModel, WeightsSource | None]:
    """Construct ``model_type`` on the target model, from a checkpoint when one is given."""
    if target.model is None:
        raise InputError(f"{model_type.method}: needs a neural target model (target.model)")
    if options.batch_size < 1:
        raise InputError(f"{model_type.method}: batch_size must be >= 1")
    if options.lora_dropout is not None and not 0 <= options.lora_dropout <= 1:
        raise InputError(f"{model_type.method}: option lora_dropout={options.lora_dropout} "
                         "must be in [0, 1]")
    if options.checkpoint is None:
        warnings.warn(
            f"{model_type.method}: no checkpoint given; the LoRA and memory are freshly "
            "initialised (seeded), so the compressed contexts carry no learned information. "
            "Use checkpoint=PATH (trained with `python -m bench.train`) for real results.",
            UserWarning, stacklevel=3)
        _refuse_repo_only_options(options, "without a checkpoint")
        k = DEFAULT_NUM_MEM if options.num_mem is None else options.num_mem
        layout = requested_layout(model_type.method, options)
        model = model_type(target.model, target.tokenizer, k, LoraSettings(), options.seed,
                           layout)
        source = None
    else:
        path = Path(options.checkpoint)
        fmt = options.checkpoint_format or ckpt.detect_format(path)
        if fmt == "compressbench":
            model, source = _from_compressbench(model_type, target, options, path)
        elif fmt == "500x-repo":
            model, source = _from_repo(model_type, target, options, path)
        else:
            raise InputError(f"checkpoint_format must be one of {', '.join(ckpt.FORMATS)}, "
                             f"got {fmt!r}")
    model.eval()
    return model, source


def _refuse_repo_only_options(options: SoftOptions, why: str) -> None:
    if options.lora_alpha is not None or options.lora_dropout is not None:
        raise InputError(f"lora_alpha and lora_dropout apply to 500x-repo checkpoints only, "
                         f"not {why}")


def _from_compressbench(model_type: type[SoftModel], target: TargetModel, options: SoftOptions,
                        path: Path) -> tuple[SoftModel, WeightsSource]:
    assert target.model is not None
    _refuse_repo_only_options(options, "compressbench checkpoints (they record their own)")
    config = ckpt.read_config(path)
    ckpt.check_compatible(config, path, model_type.method, target.model, target.name,
                          options.num_mem)
    _check_special_ids(config, target, path)
    layout = requested_layout(model_type.method, options, ckpt.layout_of(config),
                              str(path / ckpt.CONFIG_FILE))
    model = model_type(target.model, target.tokenizer, int(config["num_mem"]),
                       ckpt.lora_settings(config), int(config["seed"]), layout)
    ckpt.load_weights(model, path)
    return model, WeightsSource("compressbench", path / ckpt.WEIGHTS_FILE)


def _from_repo(model_type: type[SoftModel], target: TargetModel, options: SoftOptions,
               path: Path) -> tuple[SoftModel, WeightsSource]:
    assert target.model is not None
    checkpoint = repo.read_repo_checkpoint(path)
    if options.num_mem is not None and options.num_mem != checkpoint.num_mem:
        raise ckpt.CheckpointMismatchError(f"{checkpoint.file}: memory_embeddings hold "
                                           f"{checkpoint.num_mem} slots, but num_mem="
                                           f"{options.num_mem} was requested")
    if options.layout not in (None, "reference"):
        raise InputError(f"{checkpoint.file}: 500x-repo checkpoints use layout=reference")
    repo.check_repo_checkpoint(target.model, checkpoint, model_type.method)
    layout = requested_layout(model_type.method, options)
    lora = checkpoint.lora_settings(options.lora_alpha, options.lora_dropout)
    model = model_type(target.model, target.tokenizer, checkpoint.num_mem, lora, options.seed,
                       layout)
    repo.load_repo_weights(model, checkpoint)
    if model.uses_trigger and not checkpoint.has_ae_embedding:
        model.missing_trigger_source = str(checkpoint.file)
    return model, WeightsSource("500x-repo", checkpoint.file)


def _check_special_ids(config: dict[str, Any], target: TargetModel, path: Path) -> None:
    from bench.compressors.soft._prompts import SpecialIds

    current = SpecialIds.from_tokenizer(target.tokenizer).as_dict()
    recorded = config["special_token_ids"]
    for key in ("bos", "eos"):
        if recorded.get(key) != current[key]:
            raise ckpt.CheckpointMismatchError(
                f"{path / ckpt.CONFIG_FILE}: special_token_ids.{key} is {recorded.get(key)!r} "
                f"but the tokenizer of {target.name!r} has {current[key]!r}")


class SoftCompressor:
    """Encoder-based soft compressor (see :mod:`bench.compressors.soft.five_hundred_x`)."""

    version = "1"

    def __init__(self, name: str, target: TargetModel, model: SoftModel,
                 options: SoftOptions, source: WeightsSource | None = None) -> None:
        self.name = name
        self.target = target
        self.model = model
        self.options = options
        self.source = source
        self._eos = eos_ids(target, model)

    def settings(self) -> dict[str, Any]:
        layout, lora = self.model.layout, self.model.lora
        settings: dict[str, Any] = {
            "num_mem": self.model.num_mem, "seed": self.model.seed,
            "checkpoint": self.options.checkpoint, "layout": layout.name,
            "max_context_tokens": layout.max_context_tokens,
            "lora_r": lora.r, "lora_alpha": lora.alpha,
        }
        if layout.is_reference:
            settings["context_length"] = layout.context_length
        elif self.model.method == "500x":
            settings["decoder_positions"] = layout.decoder_positions
        if self.source is not None:
            settings["checkpoint_format"] = self.source.format
            settings["checkpoint_sha256"] = sha256_file(self.source.file)
        return settings

    def compress(self, requests: Sequence[CompressionRequest]) -> list[CompressedContext]:
        results: list[CompressedContext] = []
        size = self.options.batch_size
        limit = self.model.max_context_tokens
        for start in range(0, len(requests), size):
            chunk = requests[start:start + size]
            began = time.perf_counter()
            with torch.no_grad():
                memory = self.model.encode([request.context for request in chunk])
            seconds = (time.perf_counter() - began) / len(chunk)
            for row, request in enumerate(chunk):
                n_tokens = self.target.count_tokens(request.context)
                stats = CompressionStats(n_tokens, self.model.num_mem, seconds,
                                         encoded_tokens=min(n_tokens, limit))
                extra = {"encoder_tokens": min(n_tokens, limit), "truncated": n_tokens > limit,
                         "memory_positions": memory.memory_positions[row]}
                results.append(self.record(memory, row, stats, extra))
        return results

    def generate(self, items: Sequence[tuple[CompressedContext, DecoderPrompt]],
                 settings: GenerationSettings) -> list[GenerationOutput]:
        outputs: list[GenerationOutput] = []
        for chunk in self._decoder_batches(items):
            outputs.extend(greedy_generate(self._decoder, self.target.tokenizer, chunk,
                                           settings, self._eos))
        return outputs

    def generate_token_ids(self, items: Sequence[tuple[CompressedContext, DecoderPrompt]],
                           settings: GenerationSettings) -> list[list[int]]:
        """The greedy token ids :meth:`generate` decodes, with the stopping EOS appended when
        one was produced (as the reference implementations report them)."""
        ids: list[list[int]] = []
        for chunk in self._decoder_batches(items):
            generated, _, _ = greedy_ids(self._decoder, self.target.tokenizer, chunk, settings,
                                         self._eos)
            ids.extend(row.with_eos for row in generated)
        return ids

    @property
    def _decoder(self) -> PreTrainedModel:
        return self.model.base

    def _decoder_batches(self, items: Sequence[tuple[CompressedContext, DecoderPrompt]]
                         ) -> list[list[DecoderItem]]:
        size = self.options.batch_size
        return [[self.decoder_item(compressed, prompt)
                 for compressed, prompt in items[start:start + size]]
                for start in range(0, len(items), size)]

    def record(self, memory: EncoderOutput, row: int, stats: CompressionStats,
               extra: dict[str, Any]) -> CompressedContext:
        """The compressed record of batch row ``row``."""
        raise NotImplementedError

    def decoder_item(self, compressed: CompressedContext, prompt: DecoderPrompt) -> DecoderItem:
        """The decoder input for one (compressed context, prompt) pair."""
        raise NotImplementedError
