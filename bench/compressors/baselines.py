"""Reference rows and simple baselines: ``none``, ``zero_shot``, ``truncate``, ``random_drop``."""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
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
from bench.records import CompressedContext, CompressedText, CompressionStats
from bench.substrate.errors import InputError

TARGET_TOKENS_EXCEED_CONTEXT = "target_tokens_exceed_context"
"""``extra`` flag of a compression whose ``target_tokens`` was not below the context's
target tokens: nothing could be dropped, the context was kept whole. The harness counts
these compressions and reports them with the run."""


def budget_extra(original_tokens: int, target_tokens: int | None) -> dict[str, Any]:
    """``{TARGET_TOKENS_EXCEED_CONTEXT: True}`` when ``target_tokens`` >= the context's
    tokens, else empty: merged into the record's ``extra``."""
    if target_tokens is not None and target_tokens >= original_tokens:
        return {TARGET_TOKENS_EXCEED_CONTEXT: True}
    return {}


def budget_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """``settings`` naming the budget that is used: with ``target_tokens`` the ``rate``
    option (unused) is left out, so results and row labels never show it."""
    if settings.get("target_tokens") is not None:
        settings.pop("rate", None)
    return settings


def token_budget(original_tokens: int, rate: float | None, target_tokens: int | None) -> int:
    """Tokens to keep: ``target_tokens`` if given, else ``round(rate * original)``."""
    if target_tokens is not None:
        if target_tokens < 0:
            raise InputError(f"target_tokens must be >= 0, got {target_tokens}")
        return min(target_tokens, original_tokens)
    if rate is None:
        raise InputError("give either rate (compressed/original target tokens) or target_tokens")
    if not 0.0 <= rate <= 1.0:
        raise InputError(f"rate is compressed/original tokens and must be in [0, 1], got {rate}")
    return min(original_tokens, round(rate * original_tokens))


class _PassThrough:
    """The full context, with (``none``) or without (``zero_shot``) the task instruction."""

    version = "1"

    def __init__(self, name: str, target: TargetModel, keep_instruction: bool) -> None:
        self.name = name
        self._target = target
        self._keep_instruction = keep_instruction

    def settings(self) -> dict[str, Any]:
        return {}

    def compress(self, requests: Sequence[CompressionRequest]) -> list[CompressedContext]:
        results: list[CompressedContext] = []
        for request in requests:
            n_tokens = self._target.count_tokens(request.context)
            stats = CompressionStats(n_tokens, n_tokens, 0.0, requested_rate=1.0)
            results.append(CompressedText(request.context, stats, self._keep_instruction))
        return results


@register_compressor("none", Capabilities(Family.BASELINE))
def make_none(target: TargetModel, options: Mapping[str, Any]) -> _PassThrough:
    """Full context with the paper's instruction: the "Instruct" row (100 when normalised)."""
    parse_options(_NoOptions, options, "none")
    return _PassThrough("none", target, keep_instruction=True)


@register_compressor("zero_shot", Capabilities(Family.BASELINE))
def make_zero_shot(target: TargetModel, options: Mapping[str, Any]) -> _PassThrough:
    """Full context without the task instruction: the paper's "Zero-shot" row."""
    parse_options(_NoOptions, options, "zero_shot")
    return _PassThrough("zero_shot", target, keep_instruction=False)


@dataclass(frozen=True)
class _NoOptions:
    pass


RATE_RANGE = Interval(0.0, 1.0)
"""What ``rate`` (compressed / original target tokens) may be."""


@dataclass(frozen=True)
class TokenBudgetOptions:
    """Options of ``truncate``: how many target tokens are kept."""

    rate: float | None = option(0.5, "kept fraction of the context's target tokens "
                                "(compressed / original)", accepts=RATE_RANGE)
    target_tokens: int | None = option(None, "target tokens to keep; given, it replaces rate",
                                       accepts=Interval(0.0))


@dataclass(frozen=True)
class RandomDropOptions(TokenBudgetOptions):
    """Options of ``random_drop``: the budget and the seed of the tokens drawn."""

    seed: int = option(0, "seed of the kept positions (combined with each context)")


class _TokenSelector:
    """Keeps a subset of the context's target tokens, in their original order."""

    version = "1"

    def __init__(self, name: str, target: TargetModel, options: TokenBudgetOptions) -> None:
        self.name = name
        self._target = target
        self._options = options
        token_budget(1, options.rate, options.target_tokens)

    def settings(self) -> dict[str, Any]:
        return budget_settings(asdict(self._options))

    def compress(self, requests: Sequence[CompressionRequest]) -> list[CompressedContext]:
        return [self._compress_one(request.context) for request in requests]

    def _compress_one(self, context: str) -> CompressedText:
        start = time.perf_counter()
        ids: list[int] = self._target.tokenizer(context, add_special_tokens=False)["input_ids"]
        keep = token_budget(len(ids), self._options.rate, self._options.target_tokens)
        kept = self._select(ids, keep, context)
        text = str(self._target.tokenizer.decode(kept, skip_special_tokens=True)).strip()
        stats = CompressionStats(
            original_tokens=len(ids),
            compressed_tokens=self._target.count_tokens(text),
            seconds=time.perf_counter() - start,
            requested_rate=self._requested_rate(len(ids), keep),
        )
        extra = budget_extra(len(ids), self._options.target_tokens)
        return CompressedText(text, stats, extra=extra)

    def _requested_rate(self, original_tokens: int, keep: int) -> float:
        if self._options.target_tokens is None and self._options.rate is not None:
            return self._options.rate
        return keep / original_tokens if original_tokens else 1.0

    def _select(self, ids: list[int], keep: int, context: str) -> list[int]:
        if not isinstance(self._options, RandomDropOptions):
            return ids[:keep]
        digest = hashlib.sha256(f"{self._options.seed}\0{context}".encode()).digest()
        rng = random.Random(int.from_bytes(digest[:8], "big"))
        positions = sorted(rng.sample(range(len(ids)), keep))
        return [ids[i] for i in positions]


_TOKEN_DROPPING = Capabilities(Family.HARD, budget_options=("rate", "target_tokens"))


@register_compressor("truncate", _TOKEN_DROPPING)
def make_truncate(target: TargetModel, options: Mapping[str, Any]) -> _TokenSelector:
    """Keep the first ``rate`` x original (or ``target_tokens``) target tokens."""
    parsed = parse_options(TokenBudgetOptions, options, "truncate")
    return _TokenSelector("truncate", target, parsed)


@register_compressor("random_drop", _TOKEN_DROPPING)
def make_random_drop(target: TargetModel, options: Mapping[str, Any]) -> _TokenSelector:
    """Keep a seeded random subset of target tokens (seeded per context, order kept)."""
    parsed = parse_options(RandomDropOptions, options, "random_drop")
    return _TokenSelector("random_drop", target, parsed)
