"""Selective Context (Li et al. 2023): drop what a small causal LM finds least informative.

Each token of the context gets its self-information ``-log p(token | prefix)`` under the
compressor model (any ``AutoModelForCausalLM``, scored in windows of its context length);
a unit (word, phrase or sentence, see :mod:`bench.compressors._hard_units`) carries the
sum of its tokens' self-information, as in the paper. Units are dropped from the least
informative up until the context fits the budget in TARGET-model tokens; the kept units
stay in their original order with their original spacing.

Inside :func:`bench.compressors.shared_work` (a sweep) the compressors of one compressor
model share the loaded model and each context's self-information, which does not depend
on the budget or the unit.
"""

from __future__ import annotations

import bisect
import time
from array import array
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

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
from bench.compressors._hard_common import Budget, check_model_kind, resolve_device
from bench.compressors._hard_units import UNITS, Span, Unit, split_units
from bench.compressors._shared_work import shared_model, shared_scores
from bench.compressors.baselines import RATE_RANGE, budget_settings
from bench.records import CompressedContext, CompressedText, CompressionStats
from bench.substrate.errors import InputError

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

DEFAULT_MODEL = "openai-community/gpt2"
# Re-adding dropped units after the budget is met: at most this many tries per context.
_REFILL_TRIES = 8


@dataclass(frozen=True)
class SelectiveContextOptions:
    """Options of ``selective_context``; budgets are counted in TARGET tokens."""

    rate: float | None = option(0.5, "kept fraction of the context's target tokens "
                                "(compressed / original)", accepts=RATE_RANGE)
    target_tokens: int | None = option(None, "target tokens to keep; given, it replaces rate",
                                       accepts=Interval(0.0))
    compressor_model: str = option(DEFAULT_MODEL, "hub id or local folder of the causal LM "
                                   "that scores the tokens")
    unit: str = option("token", f"what is kept or dropped whole: {', '.join(UNITS)}")
    device: str | None = option(None, "device of the compressor model",
                                shown_default="the target model's")
    max_window: int | None = option(None, "tokens the compressor model scores at once",
                                    shown_default="the model's maximum positions, at most 1024",
                                    accepts=Interval(4.0))

    def __post_init__(self) -> None:
        if self.unit not in UNITS:
            raise InputError(
                f"selective_context: unit must be one of {', '.join(UNITS)}, got {self.unit!r}"
            )


@dataclass(frozen=True)
class TokenScores:
    """The compressor tokens' character spans and self-information of one context, flat."""

    bounds: array[int]  # begin and end of each token, one after the other
    information: array[float]

    @classmethod
    def of(cls, spans: Sequence[Span], information: Sequence[float]) -> TokenScores:
        return cls(array("q", [edge for span in spans for edge in span]),
                   array("d", information))

    def spans(self) -> list[Span]:
        edges = iter(self.bounds)
        return list(zip(edges, edges, strict=True))


class SelectiveContext:
    """The ``selective_context`` compressor (see the module docstring)."""

    name = "selective_context"
    version = "1"

    def __init__(self, target: TargetModel, options: SelectiveContextOptions) -> None:
        Budget.for_context(target, "", options.rate, options.target_tokens)
        check_model_kind(options.compressor_model, "causal", self.name)
        self._target = target
        self._options = options
        self._unit: Unit = options.unit  # type: ignore[assignment]
        self._device = resolve_device(options.device, target)
        self._model_key = (self.name, options.compressor_model, self._device)
        self._model, self._tokenizer = shared_model(
            self._model_key, lambda: _load_causal_lm(options.compressor_model, self._device))
        self._window = _scoring_window(self._model, options.max_window)

    def settings(self) -> dict[str, Any]:
        """Every option that changes the output."""
        settings = asdict(self._options)
        settings.pop("device")
        settings["max_window"] = self._window
        return budget_settings(settings)

    def compress(self, requests: Sequence[CompressionRequest]) -> list[CompressedContext]:
        """Compress each request's context (instruction and question are never touched)."""
        return list(self.compress_text(requests))

    def compress_text(self, requests: Sequence[CompressionRequest]) -> list[CompressedText]:
        """:meth:`compress`, typed as the text records it returns."""
        return [self._compress_one(request.context) for request in requests]

    def _compress_one(self, context: str) -> CompressedText:
        start = time.perf_counter()
        budget = Budget.for_context(
            self._target, context, self._options.rate, self._options.target_tokens
        )
        if budget.keep_tokens >= budget.original_tokens:
            text = context
        else:
            text = self._select(context, budget.keep_tokens)
        stats = CompressionStats(
            original_tokens=budget.original_tokens,
            compressed_tokens=self._target.count_tokens(text),
            seconds=time.perf_counter() - start,
            requested_rate=budget.requested_rate,
        )
        return CompressedText(text, stats, extra=budget.extra)

    def _select(self, context: str, keep_tokens: int) -> str:
        """The most informative units of ``context`` within ``keep_tokens`` target tokens
        (empty when nothing may be kept or the context holds no unit, e.g. only spaces)."""
        if keep_tokens == 0:
            return ""
        spans = split_units(context, self._unit)
        if not spans:
            return ""
        infos = self.unit_information(context, spans)
        return select_units(context, spans, infos, keep_tokens, self._target)

    def token_information(self, context: str) -> tuple[list[Span], list[float]]:
        """Character spans of the compressor's tokens and their self-information (nats)."""
        scores = shared_scores(self._model_key, (self._window, context),
                               lambda: TokenScores.of(*self._score_tokens(context)))
        return scores.spans(), scores.information.tolist()

    def _score_tokens(self, context: str) -> tuple[list[Span], list[float]]:
        """:meth:`token_information` computed: one pass of the compressor model per window."""
        import torch

        encoded = self._tokenizer(context, add_special_tokens=False, return_offsets_mapping=True)
        ids: list[int] = encoded["input_ids"]
        offsets: list[Span] = [tuple(span) for span in encoded["offset_mapping"]]
        start_id = self._tokenizer.bos_token_id
        if start_id is None:
            start_id = self._tokenizer.eos_token_id
        infos = [0.0] * len(ids)
        step = max(1, self._window // 2)
        history = self._window - step - 1
        with torch.no_grad():
            for first in range(0, len(ids), step):
                lo = max(0, first - history)
                window = ids[lo : first + step]
                prefix = [start_id] if start_id is not None else []
                inputs = torch.tensor([prefix + window], device=self._model.device)
                logits = self._model(input_ids=inputs, use_cache=False).logits[0].float()
                logp = torch.log_softmax(logits[:-1], dim=-1)
                scored = inputs[0, 1:]
                nll = (-logp.gather(1, scored.unsqueeze(1)).squeeze(1)).tolist()
                shift = 0 if prefix else 1
                for position in range(max(first, shift + lo), lo + len(window)):
                    infos[position] = nll[position - lo - shift]
        if start_id is None and len(infos) > 1:
            infos[0] = sum(infos[1:]) / (len(infos) - 1)
        return offsets, infos

    def unit_information(self, context: str, spans: Sequence[Span]) -> list[float]:
        """Self-information of each unit: the sum over the tokens that end inside it."""
        offsets, token_infos = self.token_information(context)
        starts = [span[0] for span in spans]
        totals = [0.0] * len(spans)
        for (begin, end), info in zip(offsets, token_infos, strict=True):
            last = _last_visible(context, begin, end)
            if last is None:
                continue
            index = bisect.bisect_right(starts, last) - 1
            if index >= 0 and last < spans[index][1]:
                totals[index] += info
        return totals


def _last_visible(text: str, begin: int, end: int) -> int | None:
    for position in range(end - 1, begin - 1, -1):
        if not text[position].isspace():
            return position
    return None


def select_units(
    context: str, spans: Sequence[Span], infos: Sequence[float], keep_tokens: int,
    target: TargetModel,
) -> str:
    """Drop the least informative units until the kept text has ``<= keep_tokens`` target tokens.

    Each unit's cost is the target-token count of the unit with the whitespace before it;
    the estimate is then checked on the assembled text, more units dropped while it is over
    budget, and dropped units re-added (most informative first) while they still fit.
    """
    pieces = [context[(spans[i - 1][1] if i else 0) : end] for i, (_, end) in enumerate(spans)]
    costs = [len(ids) for ids in target.tokenizer(pieces, add_special_tokens=False)["input_ids"]]
    order = sorted(range(len(spans)), key=lambda i: (infos[i], i))
    kept = [True] * len(spans)
    total, dropped = sum(costs), 0
    while total > keep_tokens and dropped < len(order):
        kept[order[dropped]] = False
        total -= costs[order[dropped]]
        dropped += 1
    text = _assemble(pieces, kept)
    actual = target.count_tokens(text)
    while actual > keep_tokens and dropped < len(order):
        kept[order[dropped]] = False
        dropped += 1
        text = _assemble(pieces, kept)
        actual = target.count_tokens(text)
    tries = 0
    for index in reversed(order[:dropped]):
        if tries >= _REFILL_TRIES or actual >= keep_tokens:
            break
        if costs[index] > keep_tokens - actual:
            continue
        tries += 1
        kept[index] = True
        candidate = _assemble(pieces, kept)
        candidate_tokens = target.count_tokens(candidate)
        if candidate_tokens <= keep_tokens:
            text, actual = candidate, candidate_tokens
        else:
            kept[index] = False
    return text


def _assemble(pieces: Sequence[str], kept: Sequence[bool]) -> str:
    return "".join(piece for piece, keep in zip(pieces, kept, strict=True) if keep).strip()


def _load_causal_lm(
    model_id: str, device: str
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_id, trust_remote_code=False)
    if not tokenizer.is_fast:
        raise InputError(
            f"selective_context needs a fast tokenizer (character offsets) for {model_id!r}"
        )
    model = AutoModelForCausalLM.from_pretrained(
        model_id, trust_remote_code=False, dtype=torch.float32
    )
    model.to(device)  # type: ignore[arg-type]
    model.eval()  # type: ignore[no-untyped-call]
    return model, tokenizer


def _scoring_window(model: PreTrainedModel, max_window: int | None) -> int:
    config = model.config
    positions = getattr(config, "max_position_embeddings", None) or getattr(
        config, "n_positions", None
    ) or 1024
    window = min(int(positions), max_window or 1024)
    if window < 4:
        raise InputError(f"selective_context: scoring window must be >= 4 tokens, got {window}")
    return window


@register_compressor(
    "selective_context", Capabilities(Family.HARD, budget_options=("rate", "target_tokens"))
)
def make_selective_context(target: TargetModel, options: Mapping[str, Any]) -> SelectiveContext:
    """Selective Context: drops the units a small causal LM finds least informative."""
    return SelectiveContext(
        target, parse_options(SelectiveContextOptions, options, "selective_context")
    )
