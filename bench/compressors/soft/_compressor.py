"""The ``Compressor`` + ``SoftDecoder`` front end shared by the encoder-based methods."""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from bench._atomic import sha256_file
from bench.compressors._api import CompressionRequest, TargetModel
from bench.compressors.soft import checkpoint as ckpt
from bench.compressors.soft._decode import DecoderItem, greedy_generate
from bench.compressors.soft._encoder import EncoderOutput, LoraSettings
from bench.compressors.soft._model import DECODER_POSITIONS, SoftModel
from bench.generation import DecoderPrompt, GenerationOutput, GenerationSettings
from bench.records import CompressedContext, CompressionStats

DEFAULT_NUM_MEM = 4


@dataclass(frozen=True)
class SoftOptions:
    """Options of ``500x`` and ``icae``.

    ``num_mem``: memory slots k (default 4, or the checkpoint's); ``checkpoint``: directory of
    trained weights (without it the weights are freshly initialised: only useful for tests);
    ``max_context_tokens``: context tokens the encoder reads; ``batch_size``: contexts per
    encoder/decoder batch; ``seed``: initialisation seed without a checkpoint;
    ``decoder_positions`` (500x): ``continue`` (default) or ``restart`` (the reference
    implementation's positions), else the checkpoint's.
    """

    num_mem: int | None = None
    checkpoint: str | None = None
    max_context_tokens: int = 500
    batch_size: int = 8
    seed: int = 0
    decoder_positions: str | None = None


def eos_ids(target: TargetModel, model: SoftModel) -> list[int]:
    """EOS ids: the tokenizer's plus any the generation config lists."""
    ids = {model.ids.eos}
    configured = getattr(getattr(target.model, "generation_config", None), "eos_token_id", None)
    if isinstance(configured, int):
        ids.add(configured)
    elif isinstance(configured, list):
        ids.update(int(i) for i in configured)
    return sorted(ids)


def build_soft_model(model_type: type[SoftModel], target: TargetModel,
                     options: SoftOptions) -> SoftModel:
    """Construct ``model_type`` on the target model, from a checkpoint when one is given."""
    if target.model is None:
        raise ValueError(f"{model_type.method}: needs a neural target model (target.model)")
    if options.batch_size < 1:
        raise ValueError(f"{model_type.method}: batch_size must be >= 1")
    recorded: str | None = None
    if options.checkpoint is None:
        warnings.warn(
            f"{model_type.method}: no checkpoint given; the LoRA and memory are freshly "
            "initialised (seeded), so the compressed contexts carry no learned information. "
            "Use checkpoint=DIR (trained with `python -m bench.train`) for real results.",
            UserWarning, stacklevel=3)
        k = DEFAULT_NUM_MEM if options.num_mem is None else options.num_mem
        model = model_type(target.model, target.tokenizer, k, LoraSettings(), options.seed,
                           options.max_context_tokens)
    else:
        path = Path(options.checkpoint)
        config = ckpt.read_config(path)
        ckpt.check_compatible(config, path, model_type.method, target.model, target.name,
                              options.num_mem)
        _check_special_ids(config, target, path)
        model = model_type(target.model, target.tokenizer, int(config["num_mem"]),
                           ckpt.lora_settings(config), int(config["seed"]),
                           int(config["max_context_tokens"]))
        ckpt.load_weights(model, path)
        recorded = str(config.get("decoder_positions", "continue"))
    set_decoder_positions(model, options.decoder_positions, recorded, options.checkpoint)
    model.eval()
    return model


def set_decoder_positions(model: SoftModel, requested: str | None, recorded: str | None,
                          where: str | None) -> None:
    """Apply the decoder-position convention: the request, else the checkpoint's."""
    if requested is not None and model.method != "500x":
        raise ValueError(f"{model.method}: decoder_positions applies to 500x only")
    if requested is not None and requested not in DECODER_POSITIONS:
        raise ValueError(f"decoder_positions must be one of {DECODER_POSITIONS}, "
                         f"got {requested!r}")
    if requested is not None and recorded is not None and requested != recorded:
        raise ckpt.CheckpointMismatchError(
            f"{where}: trained with decoder_positions={recorded}, asked for {requested}")
    model.decoder_positions = requested or recorded or "continue"


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
    """Encoder-based soft compressor (see :class:`bench.compressors.soft.five_hundred_x`)."""

    version = "1"

    def __init__(self, name: str, target: TargetModel, model: SoftModel,
                 options: SoftOptions) -> None:
        self.name = name
        self.target = target
        self.model = model
        self.options = options
        self._eos = eos_ids(target, model)

    def settings(self) -> dict[str, Any]:
        settings = asdict(self.options)
        settings.pop("batch_size")
        settings.update(num_mem=self.model.num_mem, seed=self.model.seed,
                        max_context_tokens=self.model.max_context_tokens)
        if self.model.method == "500x":
            settings["decoder_positions"] = self.model.decoder_positions
        else:
            settings.pop("decoder_positions")
        if self.options.checkpoint is not None:
            weights = Path(self.options.checkpoint) / ckpt.WEIGHTS_FILE
            settings["checkpoint_sha256"] = sha256_file(weights)
        return settings

    def compress(self, requests: Sequence[CompressionRequest]) -> list[CompressedContext]:
        results: list[CompressedContext] = []
        size = self.options.batch_size
        for start in range(0, len(requests), size):
            chunk = requests[start:start + size]
            began = time.perf_counter()
            with torch.no_grad():
                memory = self.model.encode([request.context for request in chunk])
            seconds = (time.perf_counter() - began) / len(chunk)
            for row, request in enumerate(chunk):
                n_tokens = self.target.count_tokens(request.context)
                stats = CompressionStats(n_tokens, self.model.num_mem, seconds)
                extra = {"encoder_tokens": min(n_tokens, self.model.max_context_tokens),
                         "truncated": n_tokens > self.model.max_context_tokens}
                results.append(self.record(memory, row, stats, extra))
        return results

    def generate(self, items: Sequence[tuple[CompressedContext, DecoderPrompt]],
                 settings: GenerationSettings) -> list[GenerationOutput]:
        outputs: list[GenerationOutput] = []
        size = self.options.batch_size
        for start in range(0, len(items), size):
            chunk = [self.decoder_item(compressed, prompt)
                     for compressed, prompt in items[start:start + size]]
            outputs.extend(greedy_generate(self.target.model, self.target.tokenizer,  # type: ignore[arg-type]
                                           chunk, settings, self._eos))
        return outputs

    def record(self, memory: EncoderOutput, row: int, stats: CompressionStats,
               extra: dict[str, Any]) -> CompressedContext:
        """The compressed record of batch row ``row``."""
        raise NotImplementedError

    def decoder_item(self, compressed: CompressedContext, prompt: DecoderPrompt) -> DecoderItem:
        """The decoder input for one (compressed context, prompt) pair."""
        raise NotImplementedError
