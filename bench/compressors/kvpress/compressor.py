"""``kvpress``: a KV-cache press of NVIDIA's kvpress library compresses the context's cache.

``compressor=kvpress,press=NAME,rate=R[,query_aware=true][,PRESS_OPTION=V...]``. The target
model prefills the task's prompt up to the end of the context: the head (the prompt before the
context) whole, then the context with the press's hooks on (:mod:`.prefill`, :mod:`.segment`);
the press keeps, per layer and KV head, ``n_kept`` of the context's entries. The decoder then
reads the prompt after the context from that cache, its first token at the UNcompressed
length. ``rate`` is the kept fraction of the context's entries; kvpress's
``compression_ratio`` is the removed fraction, ``1 - rate``, and kvpress keeps
``max(1, int(n * (1 - compression_ratio)))`` of ``n`` entries. ``press=none`` runs the same
path with no press (the full cache): it answers as ``compressor=none`` does.

With ``query_aware=true`` the question is compressed with the context (kvpress's query-aware
setting): everything after the context but the prompt's last token is pressed too
(:mod:`.layout`).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

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
from bench.compressors.kvpress import compat, presses
from bench.compressors.kvpress.bits import pressed_bits
from bench.compressors.kvpress.layout import prompt_segments
from bench.compressors.kvpress.prefill import PressedCache, press_prefill
from bench.compressors.soft.decode import DecoderItem, GreedyIds, greedy_generate, greedy_ids
from bench.generation import DecoderPrompt, GenerationOutput, GenerationSettings
from bench.records import CompressedContext, CompressedKV, CompressionStats
from bench.substrate.errors import InputError

NAME = "kvpress"
PROMPT = "prompt"
"""``extra`` key of a compression: the prefix and context its cache was made from."""
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class KVPressOptions:
    """Options of ``kvpress``; every other ``--model_args`` key is an option of the press."""

    press: str | None = option(None, "a kvpress press (SnapKV, StreamingLLM, "
                               "ExpectedAttention, Knorm, TOVA, ...) or none", shown_default=
                               "required")
    rate: float | None = option(None, "kept fraction of the context's KV entries",
                                accepts=Interval(0.0, 1.0, open_low=True),
                                shown_default="required with a press")
    query_aware: bool = option(False, "compress the question with the context")
    attn_implementation: str | None = option(
        None, "the target model's attention for this compressor",
        shown_default="eager for presses that read attention weights, else the model's own")
    batch_size: int = option(8, "prompts per decoding batch", accepts=Interval(1.0))


OWN_OPTIONS = frozenset(field.name for field in dataclasses.fields(KVPressOptions))


class KVPress:
    """``kvpress``: the context's KV cache, pressed by a kvpress press."""

    name = NAME
    version = "1"

    def __init__(self, target: TargetModel, options: KVPressOptions,
                 press_kwargs: Mapping[str, Any]) -> None:
        if target.model is None:
            raise InputError("compressor 'kvpress' needs a neural target model")
        if options.batch_size < 1:
            raise InputError(f"batch_size must be >= 1, got {options.batch_size}",
                             field="batch_size")
        self.kvpress_version = compat.installed_kvpress_version()
        compat.require_checked_version(self.kvpress_version)
        self.target = target
        self.model: Any = target.model
        self.options = options
        self.press = _build_press(options, press_kwargs)
        self._use_attention(options.attn_implementation or _default_attention(self.press))
        self._eos = _stop_ids(target.tokenizer.eos_token_id, self.model)

    def _use_attention(self, implementation: str | None) -> None:
        if implementation is not None and implementation != self.attn_implementation:
            self.model.set_attn_implementation(implementation)

    @property
    def attn_implementation(self) -> str:
        return str(self.model.config._attn_implementation)

    @property
    def press_name(self) -> str:
        return presses.NO_PRESS if self.press is None else type(self.press).__name__

    @property
    def rate(self) -> float:
        return 1.0 if self.options.rate is None else self.options.rate

    def settings(self) -> dict[str, Any]:
        options = {} if self.press is None else presses.press_options(self.press)
        ratio = None if self.press is None else self.press.compression_ratio
        return {"press": self.press_name, "rate": self.options.rate, "compression_ratio": ratio,
                "press_options": options, "query_aware": self.options.query_aware,
                "attn_implementation": self.attn_implementation, "model": self.target.name,
                **compat.adapter_record(self.kvpress_version)}

    def compress(self, requests: Sequence[CompressionRequest]) -> list[CompressedContext]:
        return [self._compress_one(request) for request in requests]

    def _compress_one(self, request: CompressionRequest) -> CompressedKV:
        prefix = request.prefix or ""
        suffix = request.suffix if self.options.query_aware else ""
        if self.options.query_aware and not suffix:
            raise ValueError("kvpress: query_aware needs the prompt after the context")
        segments = prompt_segments(self.target.tokenizer, prefix, request.context, suffix or "",
                                   self.options.query_aware)
        made_from = {"prefix": prefix, "context": request.context,
                     "ids": [*segments.head, *segments.pressed]}
        return self.compress_ids(segments.head, segments.pressed, {PROMPT: made_from})

    def compress_ids(self, head: Sequence[int], pressed: Sequence[int],
                     extra: Mapping[str, Any] | None = None) -> CompressedKV:
        """The cache of ``head + pressed`` token ids with the press on ``pressed`` only."""
        began = time.perf_counter()
        cache = press_prefill(self.model, self.press, head, pressed)
        return self._record(cache, time.perf_counter() - began, extra or {})

    def _record(self, cache: PressedCache, seconds: float,
                more: Mapping[str, Any]) -> CompressedKV:
        kept = cache.kept_per_layer
        achieved = sum(kept) / (len(kept) * cache.pressed_tokens)
        stats = CompressionStats(
            original_tokens=cache.pressed_tokens, compressed_tokens=round(sum(kept) / len(kept)),
            seconds=seconds, requested_rate=self.rate, compressed_bits=float(pressed_bits(cache)))
        extra: dict[str, Any] = {
            "press": self.press_name, "requested_rate": self.rate, "achieved_rate": achieved,
            "pressed_tokens": cache.pressed_tokens, "kept_tokens_per_layer": list(kept),
            "head_tokens": cache.head_tokens, **more}
        # The front end compresses every context of a run before answering: the caches wait in
        # CPU memory and go to the model's device batch by batch when decoded.
        return CompressedKV(tuple(k.cpu() for k in cache.keys),
                            tuple(v.cpu() for v in cache.values), stats,
                            position_offset=cache.next_position, extra=extra)

    def generate(self, items: Sequence[tuple[CompressedContext, DecoderPrompt]],
                 settings: GenerationSettings) -> list[GenerationOutput]:
        decoder_items = [self.decoder_item(compressed, prompt) for compressed, prompt in items]
        outputs: list[GenerationOutput] = []
        size = self.options.batch_size
        for start in range(0, len(decoder_items), size):
            outputs.extend(greedy_generate(self.model, self.target.tokenizer,
                                           decoder_items[start:start + size], settings,
                                           self._eos))
        return outputs

    def answer_ids(self, compressed: CompressedKV, tail: Sequence[int],
                   settings: GenerationSettings) -> GreedyIds:
        """Greedy ids (EOS kept) after reading the ``tail`` token ids from the cache."""
        [answer], _, _ = greedy_ids(self.model, self.target.tokenizer,
                                    [_decoder_item(compressed, tail)], settings, self._eos)
        return answer

    def decoder_item(self, compressed: CompressedContext, prompt: DecoderPrompt) -> DecoderItem:
        """The decoder's input: the prompt after the pressed part, over the pressed cache."""
        if not isinstance(compressed, CompressedKV) or PROMPT not in compressed.extra:
            raise TypeError("kvpress decodes the CompressedKV its own compress() returned")
        return _decoder_item(compressed, self._tail(compressed.extra[PROMPT], prompt))

    def _tail(self, made_from: Mapping[str, Any], prompt: DecoderPrompt) -> tuple[int, ...]:
        if prompt.prefix != made_from["prefix"]:
            raise ValueError("kvpress: the prompt's text before the context differs from the "
                             "one the cache was made with")
        segments = prompt_segments(self.target.tokenizer, prompt.prefix, made_from["context"],
                                   prompt.suffix, self.options.query_aware)
        if [*segments.head, *segments.pressed] == made_from["ids"]:
            return segments.tail
        if self.options.query_aware:
            raise ValueError("kvpress: the prompt differs from the one the cache was made with")
        logger.warning("kvpress: the context's last token merges with the text after it when "
                       "tokenized together; that text is tokenized on its own")
        return tuple(self.target.tokenizer(prompt.suffix, add_special_tokens=False)["input_ids"])


def _decoder_item(compressed: CompressedKV, tail: Sequence[int]) -> DecoderItem:
    if not tail:
        raise ValueError("kvpress: the prompt has no tokens after the pressed part")
    return DecoderItem(prompt_ids=tuple(tail), keys=compressed.keys, values=compressed.values,
                       position_offset=compressed.position_offset)


def _build_press(options: KVPressOptions, press_kwargs: Mapping[str, Any]) -> Any:
    if options.press in (None, presses.NO_PRESS):
        if press_kwargs or options.rate not in (None, 1.0):
            raise InputError("press=none takes no rate and no press options", field="press")
        return None
    if options.rate is None:
        raise InputError("compressor 'kvpress' needs rate=R, the kept fraction of the "
                         "context's KV entries", field="rate")
    cls = presses.press_class(options.press)
    return presses.build_press(cls, presses.compression_ratio(options.rate), press_kwargs)


def _stop_ids(tokenizer_eos: int | None, model: Any) -> list[int]:
    """Ids that end an answer: the tokenizer's EOS and those of ``generation_config``."""
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    listed = configured if isinstance(configured, list) else [configured]
    ids = {int(i) for i in [tokenizer_eos, *listed] if i is not None}
    if not ids:
        raise InputError("the target model defines no EOS token (tokenizer or "
                         "generation_config.json)")
    return sorted(ids)


def _default_attention(press: Any | None) -> str | None:
    return "eager" if press is not None and type(press).__name__ in presses.EAGER_PRESSES \
        else None


def _query_aware(settings: Mapping[str, Any]) -> bool:
    return bool(settings.get("query_aware"))


@register_compressor(NAME, Capabilities(Family.KV_EVICTION, question_aware=_query_aware,
                                        budget_options=("rate",), cacheable=False,
                                        reads_prompt=True))
def make_kvpress(target: TargetModel, options: Mapping[str, Any]) -> KVPress:
    """A kvpress press on the target model's cache of the context; any other option is one
    of the press's own (window_size, n_sink, ...)."""
    own = {key: value for key, value in options.items() if key in OWN_OPTIONS}
    parsed = parse_options(KVPressOptions, own, NAME)
    if "press" not in options:  # lm-eval reads ``press=none`` as None: tell it from no option
        raise InputError("compressor 'kvpress' needs press=NAME (a kvpress press, or none)",
                         field="press")
    press_kwargs = {key: value for key, value in options.items() if key not in OWN_OPTIONS}
    return KVPress(target, parsed, press_kwargs)
