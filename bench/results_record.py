"""The results record the harness writes and the leaderboard reads, through the same types.

A run's :class:`RunInfo` goes into lm-eval's results file as ``config.compressbench``
(:meth:`RunInfo.to_json`); each answered document's :class:`SampleRecord` goes into the
task's per-document results, and so into every logged sample, as :meth:`SampleRecord.metrics`.
The leaderboard reads them back with :func:`parse_run_info` and :func:`read_measurements`.

``schema_version`` is ``MAJOR.MINOR``. A minor version only adds fields, which readers of
the same major ignore; a major version a reader does not know is refused. A record without
``schema_version`` was written before the record had one, in the layout of version 1.0.
The samples of a run belong to its record's version (a logged sample has no room for one:
each of its numbers is one of the task's metrics).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from bench import specs
from bench.substrate.errors import InputError

SCHEMA_VERSION = "1.1"
RECORD_KEY = "compressbench"  # the record's key in lm-eval's ``config`` section
RECORD_FIELD = f"config.{RECORD_KEY}"
_VERSION_RE = re.compile(r"^(?P<major>\d+)\.(?P<minor>\d+)$")
_RERUN_HINT = "read it with the compressbench version that wrote it, or run the evaluation again"

# The kinds of metric a sample record measures (scores are the task's).
MEASURED_KINDS: tuple[specs.MetricKind, ...] = ("efficiency", "served", "size")


@dataclass(frozen=True)
class ServedUsage:
    """Tokens a server reported for one answer (its share when one call answered several)."""

    prompt_tokens: float
    completion_tokens: float


@dataclass(frozen=True)
class SampleRecord:
    """What answering one document cost, in the target model's tokens and wall time."""

    compression_ratio: float
    original_tokens: int
    compressed_tokens: int
    compress_seconds: float
    answer_seconds: float
    ttft_seconds: float
    generated_tokens: int
    peak_rss_mb: float
    flops_ratio: float
    compression_cached: bool = False
    served_prompt_tokens: float | None = None
    served_completion_tokens: float | None = None
    requested_rate: float | None = None
    compressed_bits: float | None = None
    original_bytes: int | None = None
    encoded_context_tokens: int | None = None

    @property
    def bits_per_token(self) -> float | None:
        """Compressed bits per original target token (None when the bits are unknown)."""
        if self.compressed_bits is None:
            return None
        return self.compressed_bits / self.original_tokens if self.original_tokens else 0.0

    @property
    def bits_per_byte(self) -> float | None:
        """Compressed bits per UTF-8 byte of the context the compressor was given (None when
        the bits or the bytes are unknown, or the context is empty)."""
        if self.compressed_bits is None or not self.original_bytes:
            return None
        return self.compressed_bits / self.original_bytes

    def metrics(self) -> dict[str, float]:
        """The values declared as measured metrics (:mod:`bench.specs`) that this record
        knows, as floats, in the record's order (the cache flag is not a metric): what a
        logged sample carries."""
        declared = set(specs.metric_names(*MEASURED_KINDS))
        values = {**{f.name: getattr(self, f.name) for f in fields(self)},
                  "bits_per_token": self.bits_per_token, "bits_per_byte": self.bits_per_byte}
        return {name: float(value) for name, value in values.items()
                if name in declared and value is not None}


def read_measurements(sample: Mapping[str, Any], path: str, line: int | None = None,
                      hint: str = _RERUN_HINT) -> dict[str, float]:
    """The measured metrics a logged sample carries (what :meth:`SampleRecord.metrics`
    wrote), in declaration order; one that is not a finite number is an error naming it."""
    logged = _Object(sample, path, "", line, hint)
    return {name: logged.number(name) for name in specs.metric_names(*MEASURED_KINDS)
            if name in sample}


@dataclass(frozen=True)
class CompressorRecord:
    """The compressor of a run: its name, version and every option that shaped its output
    (``settings`` None: not recorded, as in a version 1 record written by hand), and what the
    method declared when it registered (None in records older than version 1.1): its
    ``family``, whether this run conditioned on the question, and its budget options."""

    name: str
    version: str
    settings: dict[str, Any] | None
    family: str | None = None
    question_aware: bool | None = None
    budget_options: tuple[str, ...] | None = None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "settings": self.settings,
                "family": self.family, "question_aware": self.question_aware,
                "budget_options": (None if self.budget_options is None
                                   else list(self.budget_options))}


@dataclass(frozen=True)
class TargetRecord:
    """The model that answered: its name, and its shape where the FLOPs estimate knew it."""

    name: str
    shape: dict[str, int] | None = None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "shape": self.shape}


@dataclass(frozen=True)
class CacheRecord:
    """Where the compression cache of a run was, and how often it answered."""

    path: str
    hits: int
    misses: int

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "hits": self.hits, "misses": self.misses}


@dataclass(frozen=True)
class RunInfo:
    """What the harness records about one run (lm-eval's ``config.compressbench``).

    ``per_task`` summarises each task's sample records (means, counts);
    ``target_tokens_exceed_context`` counts per task the samples whose context was kept whole
    because the token budget was not below it; ``contexts_cut_by_compressor`` those whose
    context was longer than the compressor encodes (a soft compressor's checkpoint was trained
    on shorter ones) and was cut. ``reader`` names a non-neural target and
    ``served`` describes the endpoint of a served model; both are left out when None.
    Fields after ``target`` may be absent from a version 1 record written by hand: a reader
    takes them as None or empty.
    """

    compressor: CompressorRecord
    target: TargetRecord | None = None
    harness_version: str = ""
    compressed_bits_of_text: str | None = None
    compressions: int | None = None
    contexts_cut_to_window: int | None = None
    compression_cache: CacheRecord | None = None
    peak_rss_mb: float | None = None
    peak_cuda_mb: float | None = None
    per_task: dict[str, dict[str, float]] = field(default_factory=dict)
    target_tokens_exceed_context: dict[str, int] = field(default_factory=dict)
    contexts_cut_by_compressor: dict[str, int] = field(default_factory=dict)
    reader: str | None = None
    served: dict[str, Any] | None = None
    schema_version: str = SCHEMA_VERSION

    def to_json(self) -> dict[str, Any]:
        """The record as the harness writes it."""
        data: dict[str, Any] = {
            "schema_version": self.schema_version,
            "harness_version": self.harness_version,
            "compressor": self.compressor.to_json(),
            "target": None if self.target is None else self.target.to_json(),
            "compressed_bits_of_text": self.compressed_bits_of_text,
            "compressions": self.compressions,
            "contexts_cut_to_window": self.contexts_cut_to_window,
            "compression_cache": (None if self.compression_cache is None
                                  else self.compression_cache.to_json()),
            "peak_rss_mb": self.peak_rss_mb,
            "peak_cuda_mb": self.peak_cuda_mb,
            "per_task": self.per_task,
            "target_tokens_exceed_context": self.target_tokens_exceed_context,
            "contexts_cut_by_compressor": self.contexts_cut_by_compressor,
        }
        if self.reader is not None:
            data["reader"] = self.reader
        if self.served is not None:
            data["served"] = self.served
        return data


def parse_run_info(config: Mapping[str, Any], path: str) -> RunInfo | None:
    """The record in lm-eval's ``config`` section of the results file ``path`` (None when
    the run has none: a stock lm-eval backend); a record of an unknown major version, or a
    field of the wrong type, is an :class:`InputError` naming the file and the field."""
    if config.get(RECORD_KEY) is None:
        return None
    record = _Object(config, path, "config").object(RECORD_KEY)
    version = check_schema_version(record.optional_text("schema_version"), path)
    return RunInfo(
        compressor=_compressor(record.object("compressor")),
        target=_target(record.optional_object("target")),
        harness_version=record.optional_text("harness_version") or "",
        compressed_bits_of_text=record.optional_text("compressed_bits_of_text"),
        compressions=record.optional_count("compressions"),
        contexts_cut_to_window=record.optional_count("contexts_cut_to_window"),
        compression_cache=_cache(record.optional_object("compression_cache")),
        peak_rss_mb=record.optional_number("peak_rss_mb"),
        peak_cuda_mb=record.optional_number("peak_cuda_mb"),
        per_task=_per_task(record.optional_object("per_task")),
        target_tokens_exceed_context=_counts(record.optional_object(
            "target_tokens_exceed_context")),
        contexts_cut_by_compressor=_counts(record.optional_object(
            "contexts_cut_by_compressor")),
        reader=record.optional_text("reader"),
        served=_plain(record.optional_object("served")),
        schema_version=version,
    )


def check_schema_version(version: str | None, path: str) -> str:
    """``version`` (``MAJOR.MINOR``; None: an unversioned record, 1.0) when this reader
    knows its major version; otherwise an :class:`InputError`."""
    if version is None:
        return "1.0"
    match = _VERSION_RE.match(version)
    where = f"{RECORD_FIELD}.schema_version"
    if match is None:
        raise InputError(f"{version!r} is not a MAJOR.MINOR version", path, field=where,
                         hint=_RERUN_HINT)
    if match.group("major") != SCHEMA_VERSION.partition(".")[0]:
        raise InputError(f"results schema {version} is not supported (this compressbench "
                         f"reads {SCHEMA_VERSION.partition('.')[0]}.x)", path, field=where,
                         hint=_RERUN_HINT)
    return version


def _compressor(data: _Object) -> CompressorRecord:
    settings = data.optional_object("settings")
    return CompressorRecord(data.text("name"), data.optional_version("version"),
                            None if settings is None else dict(settings.data),
                            family=data.optional_text("family"),
                            question_aware=data.optional_flag("question_aware"),
                            budget_options=data.optional_names("budget_options"))


def _target(data: _Object | None) -> TargetRecord | None:
    if data is None:
        return None
    shape = data.optional_object("shape")
    return TargetRecord(data.text("name"),
                        None if shape is None else {name: shape.count(name) for name in shape.data})


def _cache(data: _Object | None) -> CacheRecord | None:
    if data is None:
        return None
    return CacheRecord(data.text("path"), data.count("hits"), data.count("misses"))


def _per_task(data: _Object | None) -> dict[str, dict[str, float]]:
    if data is None:
        return {}
    summaries = {task: data.object(task) for task in data.data}
    return {task: {name: summary.number(name) for name in summary.data}
            for task, summary in summaries.items()}


def _counts(data: _Object | None) -> dict[str, int]:
    return {} if data is None else {name: data.count(name) for name in data.data}


def _plain(data: _Object | None) -> dict[str, Any] | None:
    return None if data is None else dict(data.data)


class _Object:
    """Typed reads of one JSON object's fields; a wrong one is an :class:`InputError` that
    names the file (and line) and the field's dotted path."""

    def __init__(self, data: Mapping[str, Any], path: str, prefix: str,
                 line: int | None = None, hint: str = _RERUN_HINT) -> None:
        self.data = data
        self.path = path
        self.prefix = prefix
        self.line = line
        self.hint = hint

    def _error(self, name: str, problem: str) -> InputError:
        return InputError(problem, self.path, self.line, field=self._field(name), hint=self.hint)

    def _field(self, name: str) -> str:
        return f"{self.prefix}.{name}" if self.prefix else name

    def _get(self, name: str) -> Any:
        if name not in self.data:
            raise self._error(name, "missing")
        return self.data[name]

    def object(self, name: str) -> _Object:
        value = self._get(name)
        if not isinstance(value, Mapping):
            raise self._error(name, f"must be an object, got {value!r}")
        return _Object(value, self.path, self._field(name), self.line, self.hint)

    def optional_object(self, name: str) -> _Object | None:
        return None if self.data.get(name) is None else self.object(name)

    def text(self, name: str) -> str:
        value = self._get(name)
        if not isinstance(value, str):
            raise self._error(name, f"must be a string, got {value!r}")
        return value

    def optional_text(self, name: str) -> str | None:
        return None if self.data.get(name) is None else self.text(name)

    def optional_version(self, name: str) -> str:
        """A version: a string, or a number written as one ("" when absent)."""
        value = self.data.get(name)
        if value is None:
            return ""
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise self._error(name, f"must be a string, got {value!r}")
        return str(value)

    def optional_flag(self, name: str) -> bool | None:
        value = self.data.get(name)
        if value is not None and not isinstance(value, bool):
            raise self._error(name, f"must be true or false, got {value!r}")
        return value

    def optional_names(self, name: str) -> tuple[str, ...] | None:
        value = self.data.get(name)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise self._error(name, f"must be a list of strings, got {value!r}")
        return tuple(value)

    def number(self, name: str) -> float:
        value = self._get(name)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self._error(name, f"must be a number, got {value!r}")
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if not math.isfinite(number):
            raise self._error(name, f"{value!r} is not a finite number")
        return number

    def optional_number(self, name: str) -> float | None:
        return None if self.data.get(name) is None else self.number(name)

    def count(self, name: str) -> int:
        value = self._get(name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise self._error(name, f"must be a whole number >= 0, got {value!r}")
        return value

    def optional_count(self, name: str) -> int | None:
        return None if self.data.get(name) is None else self.count(name)
