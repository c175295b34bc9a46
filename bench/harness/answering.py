"""Shared bookkeeping of the ``compressed`` lm-eval models: records, summaries, model info."""

from __future__ import annotations

import logging
import statistics
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from platformdirs import user_cache_dir

from bench import specs
from bench.compressors import Capabilities
from bench.compressors.baselines import TARGET_TOKENS_EXCEED_CONTEXT
from bench.compressors.bits import BitCounter
from bench.generation import GenerationOutput, GenerationSettings
from bench.harness import sample_log
from bench.harness.accounting import ModelShape, flops_ratio, peak_cuda_mb, peak_rss_mb
from bench.harness.compression_cache import CompressionCache
from bench.harness.frontend import CompressionFrontEnd, PreparedRequest, PromptSource
from bench.records import CompressedText
from bench.results_record import (
    RECORD_KEY,
    CacheRecord,
    RunInfo,
    SampleRecord,
    ServedUsage,
    TargetRecord,
)
from bench.substrate.errors import InputError

HARNESS_VERSION = "1"
logger = logging.getLogger(__name__)
_OFF = ("off", "none", "false", "0", "")


def open_cache(setting: str | None, capabilities: Capabilities) -> CompressionCache | None:
    """The compression cache: ``off``, a directory, or the default user cache directory
    (always off for a method that declared its compressions not cacheable)."""
    if not capabilities.cacheable:
        return None
    if setting is None or str(setting) == "default":
        return CompressionCache(Path(user_cache_dir("compressbench")) / "compressions")
    if str(setting).lower() in _OFF:
        return None
    return CompressionCache(Path(str(setting)).expanduser())


BITS_SETTINGS = ("llmzip", "off")


def text_bits_setting(setting: str | None) -> bool:
    """``compressed_bits=llmzip`` (default: text compressions get the llmzip code length of
    the kept text, one forward pass over each distinct text) or ``off`` (their bits are left
    out; soft and self-measured sizes are still recorded)."""
    value = "llmzip" if setting is None else str(setting).lower()
    if value not in BITS_SETTINGS:
        raise InputError(f"compressed_bits={setting!r} in --model_args: use llmzip (the "
                         "default) or off")
    return value == "llmzip"


def settings_from_gen_kwargs(gen_kwargs: dict[str, Any], default_max: int) -> GenerationSettings:
    """lm-eval ``gen_kwargs`` -> greedy :class:`GenerationSettings`."""
    until = gen_kwargs.get("until") or []
    if isinstance(until, str):
        until = [until]
    return GenerationSettings(int(gen_kwargs.get("max_gen_toks", default_max)), tuple(until))


class RunAccount:
    """Files per-sample records and keeps per-task summaries for ``get_model_info``."""

    def __init__(self, frontend: CompressionFrontEnd, shape: ModelShape | None,
                 code_text: bool = True) -> None:
        self.frontend = frontend
        self.shape = shape
        self.per_task: dict[str, list[SampleRecord]] = defaultdict(list)
        self.target_tokens_exceed_context: Counter[str] = Counter()
        self.contexts_cut_by_compressor: Counter[str] = Counter()
        self.count_bits = BitCounter(frontend.target, code_text)

    def file(self, request: PromptSource, prepared: PreparedRequest, output: GenerationOutput,
             original_prompt: str, served: ServedUsage | None = None) -> None:
        count = self.frontend.target.count_tokens
        stats = prepared.compressed.stats
        full_prompt = count(original_prompt)
        text_prompt = prepared.text_prompt()
        compressed_prompt = (count(text_prompt) if text_prompt is not None
                             else stats.compressed_tokens + count(prepared.parts.suffix))
        record = SampleRecord(
            compression_ratio=stats.achieved_rate,
            original_tokens=stats.original_tokens,
            compressed_tokens=stats.compressed_tokens,
            compress_seconds=stats.seconds,
            answer_seconds=output.seconds,
            ttft_seconds=output.ttft_seconds,
            generated_tokens=output.generated_tokens,
            peak_rss_mb=peak_rss_mb(),
            flops_ratio=flops_ratio(self.shape, full_prompt, compressed_prompt,
                                    output.generated_tokens),
            compression_cached=prepared.cached,
            served_prompt_tokens=None if served is None else served.prompt_tokens,
            served_completion_tokens=None if served is None else served.completion_tokens,
            requested_rate=stats.requested_rate,
            compressed_bits=self.count_bits(prepared.compressed),
            original_bytes=len(prepared.parts.context.encode("utf-8")),
            encoded_context_tokens=stats.encoded_tokens,
        )
        sample_log.file_record(request.doc, record)
        self.per_task[str(request.task_name)].append(record)
        if prepared.compressed.extra.get(TARGET_TOKENS_EXCEED_CONTEXT):
            self.target_tokens_exceed_context[str(request.task_name)] += 1
        if stats.cut_by_compressor:
            self.contexts_cut_by_compressor[str(request.task_name)] += 1

    def run_info(self, compressor: Any, target_name: str, reader: str | None = None,
                 served: dict[str, Any] | None = None) -> RunInfo:
        """The run's record (``reader``: a non-neural target; ``served``: its endpoint)."""
        cache = self.frontend.cache
        _warn_budget(compressor, self.target_tokens_exceed_context)
        _warn_cut(compressor, self.contexts_cut_by_compressor)
        return RunInfo(
            harness_version=HARNESS_VERSION,
            compressor=self.frontend.compressor_record(),
            target=TargetRecord(target_name, vars(self.shape) if self.shape else None),
            compressed_bits_of_text="llmzip" if self.count_bits.code_text else "off",
            compressions=self.frontend.compressions,
            contexts_cut_to_window=self.frontend.contexts_cut,
            compression_cache=None if cache is None else CacheRecord(
                str(cache.root), cache.hits, cache.misses),
            peak_rss_mb=peak_rss_mb(),
            peak_cuda_mb=peak_cuda_mb(),
            per_task={task: _summary(records) for task, records in self.per_task.items()},
            target_tokens_exceed_context=dict(sorted(self.target_tokens_exceed_context.items())),
            contexts_cut_by_compressor=dict(sorted(self.contexts_cut_by_compressor.items())),
            reader=reader,
            served=served,
        )


def model_info(info: RunInfo) -> dict[str, Any]:
    """The record as lm-eval's ``get_model_info`` hands it to the results' ``config``."""
    return {RECORD_KEY: info.to_json()}


def _summary(records: list[SampleRecord]) -> dict[str, float]:
    ratios = [r.compression_ratio for r in records]
    summary = {
        "samples": float(len(records)),
        "compression_ratio_mean": statistics.fmean(ratios),
        "compression_ratio_stdev": statistics.pstdev(ratios),
        "compressed_tokens_mean": statistics.fmean(r.compressed_tokens for r in records),
        "compress_seconds_mean": statistics.fmean(r.compress_seconds for r in records),
        "answer_seconds_mean": statistics.fmean(r.answer_seconds for r in records),
        "cached_fraction": statistics.fmean(float(r.compression_cached) for r in records),
    }
    sized = [r for r in records if r.compressed_bits is not None]
    if sized:
        bits = sum(float(r.compressed_bits or 0.0) for r in sized)
        tokens = sum(r.original_tokens for r in sized)
        summary["compressed_bits_mean"] = bits / len(sized)
        summary["bits_per_original_token"] = bits / tokens if tokens else 0.0
        original_bytes = sum(r.original_bytes or 0 for r in sized)
        if original_bytes:
            summary["bits_per_original_byte"] = bits / original_bytes
    served = [r.metrics() for r in records if r.served_prompt_tokens is not None]
    if served:
        for name in specs.metric_names("served"):
            summary[f"{name}_mean"] = statistics.fmean(m[name] for m in served)
    return summary


def _warn_budget(compressor: Any, exceeded: Counter[str]) -> None:
    if exceeded:
        counts = ", ".join(f"{task}: {n}" for task, n in sorted(exceeded.items()))
        logger.warning(
            "%s: target_tokens not below the context's tokens, context kept whole (%s); "
            "these samples are not compressed", compressor.name, counts)


def _warn_cut(compressor: Any, cut: Counter[str]) -> None:
    if cut:
        counts = ", ".join(f"{task}: {n}" for task, n in sorted(cut.items()))
        logger.warning(
            "%s: contexts longer than it encodes were cut (samples per task: %s); each "
            "sample's encoded_context_tokens says how many of its tokens were read",
            compressor.name, counts)


def is_text(prepared: PreparedRequest) -> bool:
    return isinstance(prepared.compressed, CompressedText)
