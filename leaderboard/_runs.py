"""Reading lm-eval output folders: results files, their sample files, and row identities."""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.compressors import Family, UnknownCompressorError, capabilities_of
from bench.lmeval.plugin import MODELS as COMPRESSBENCH_MODELS
from bench.results_record import parse_run_info, read_measurements
from leaderboard._environment import RunEnvironment, run_environment
from leaderboard._errors import LeaderboardError

RESULTS_RE = re.compile(r"^results_(?P<date>.+)\.json$")

# model_args keys that configure the runtime, not the compressor: not part of a row's identity.
RUNTIME_KEYS = frozenset(
    {
        "pretrained",
        "compressor",
        "device",
        "dtype",
        "batch_size",
        "max_batch_size",
        "trust_remote_code",
        "revision",
        "parallelize",
        "device_map",
        "tokenizer",
        "use_fast_tokenizer",
        "max_length",
        "add_bos_token",
        "cache_dir",
        "compress_batch_size",
        "compression_cache",
        "compressor_device",
        "max_memory_per_gpu",
        "offload_folder",
        "backend",
    }
)


STOCK_SUFFIX = " (stock lm-eval)"
BASELINE_FAMILY = Family.BASELINE.value
UNDECLARED_FAMILY = Family.UNDECLARED.value
# What a row of the compressbench ``compressed_reader`` (no neural model) is called.
_READER_RE = re.compile(r"^lexical-reader\[(?P<tokenizer>.*)\]$")


@dataclass(frozen=True)
class Display:
    """How a row's names are shown: how many trailing components the model's folder and the
    settings' paths keep, and a tag for rows whose names are the same even when whole."""

    model_depth: int = 1
    label_depth: int = 1
    tag: str = ""


@dataclass(frozen=True, order=True)
class RowKey:
    """Identity of a leaderboard row: base model, compressor and its settings.

    ``stock`` rows come from a stock lm-eval backend (``--model hf``, ``vllm``, ...) that ran
    no compressor: their ``compressor`` is the backend's name. ``remark`` qualifies the row for
    readers (e.g. that ``zero_shot`` equals ``none`` for a target that ignores the
    instruction); it is not part of the identity, and neither is ``display`` (see
    :func:`leaderboard._labels.unique_labels`), nor what the compressor declared when it
    registered (``family``, ``budget_options``: the settings that set how much is kept).
    """

    model: str
    compressor: str
    settings: tuple[tuple[str, str], ...] = ()
    version: str = ""
    stock: bool = False
    remark: str = field(default="", compare=False)
    display: Display = field(default=Display(), compare=False)
    family: str = field(default=UNDECLARED_FAMILY, compare=False)
    budget_options: tuple[str, ...] = field(default=(), compare=False)

    @property
    def label(self) -> str:
        """Name of the row's compressor, e.g. ``500x (num_mem=4)`` or ``hf (stock lm-eval)``
        (paths shortened); ``--baseline-compressor`` accepts it."""
        name = self.compressor + STOCK_SUFFIX if self.stock else self.compressor
        if self.settings:
            depth = self.display.label_depth
            inner = ", ".join(f"{key}={short_name(value, depth)}" for key, value in self.settings)
            name = f"{name} ({inner})"
        return f"{name} [{self.display.tag}]" if self.display.tag else name

    @property
    def title(self) -> str:
        """The label as tables show it, with the remark."""
        return f"{self.label} ({self.remark})" if self.remark else self.label

    @property
    def model_label(self) -> str:
        """Display name of the base model: an HF id, or a local model's folder name."""
        depth = self.display.model_depth
        reader = _READER_RE.match(self.model)
        if reader:
            return f"lexical reader ({model_name(reader.group('tokenizer'), depth)} tokenizer)"
        return model_name(self.model, depth)

    def answers_to(self, name: str) -> bool:
        """Whether ``name`` (a label, or the compressor or backend name) selects this row."""
        return name in (self.label, self.compressor)

    def to_json(self) -> dict[str, Any]:
        """Plain-JSON form of the key."""
        return {
            "model": self.model,
            "model_label": self.model_label,
            "compressor": self.compressor,
            "settings": dict(self.settings),
            "compressor_version": self.version,
            "stock_lm_eval": self.stock,
            "label": self.label,
            "title": self.title,
        }


@dataclass
class TaskResult:
    """The aggregated metrics of one task in one run."""

    task: str
    version: str
    metrics: dict[str, float]
    stderrs: dict[str, float | None]
    higher_is_better: dict[str, bool]
    n_samples: int | None
    samples: list[dict[str, Any]] = field(default_factory=list)
    n_available: int | None = None  # documents of the task before ``--limit``
    # per logged sample, its record's measured metrics (bench.results_record)
    measurements: list[dict[str, float]] = field(default_factory=list)


@dataclass
class Run:
    """One lm-eval results file and what it measured."""

    path: Path
    key: RowKey
    date: str
    lm_eval_version: str
    tasks: dict[str, TaskResult]
    limit: float | None = None  # lm-eval's ``--limit`` (a count, or a fraction when < 1)
    environment: RunEnvironment = field(default_factory=RunEnvironment)
    # what ``key`` was derived from (:func:`row_key`): the results file's ``config`` section
    # and ``model_name``, kept for ``leaderboard export``
    config: dict[str, Any] = field(default_factory=dict)
    model_name: str = ""


def parse_model_args(value: Any, where: str) -> dict[str, str]:
    """Turn ``config.model_args`` (``"k=v,k2=v2"`` or a dict) into a string dict."""
    if value is None or value == "":
        return {}
    if isinstance(value, Mapping):
        return {str(key): _text(item) for key, item in value.items()}
    if isinstance(value, str):
        pairs: dict[str, str] = {}
        for part in value.split(","):
            if not part.strip():
                continue
            if "=" not in part:
                raise LeaderboardError(f"{where}: config.model_args: {part!r} is not key=value")
            key, _, item = part.partition("=")
            pairs[key.strip()] = item.strip()
        return pairs
    raise LeaderboardError(f"{where}: config.model_args must be a string or an object")


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, float) and value.is_integer():
        return str(value)
    return json.dumps(value, sort_keys=True) if isinstance(value, dict | list) else str(value)


def row_key(config: Mapping[str, Any], model_name: str, where: str) -> RowKey:
    """Derive the row identity of a results file from its ``config`` section.

    The compressor's own record (``config.compressbench.compressor``: name, version, settings)
    wins over ``model_args``; without it the compressor is ``model_args.compressor`` (``none``
    when absent) and its settings are the other model arguments that are not runtime options.
    A stock lm-eval backend run without any compressor is a ``stock`` row named after the
    backend, so that it never collides with the ``none`` row of the ``compressed`` model.
    """
    args = parse_model_args(config.get("model_args"), where)
    backend = str(config.get("model") or "")
    settings = {key: value for key, value in args.items() if key not in RUNTIME_KEYS}
    base = args.get("pretrained") or model_name or backend or "unknown"
    info = parse_run_info(config, where)
    if info is None:
        if "compressor" not in args and backend and backend not in COMPRESSBENCH_MODELS:
            return RowKey(base, backend, tuple(sorted(settings.items())), stock=True,
                          family=BASELINE_FAMILY)
        compressor, version = args.get("compressor", "none"), ""
        declared = _registered(compressor)
    else:
        compressor, version = info.compressor.name, info.compressor.version
        declared = _registered(compressor)
        if info.compressor.family is not None:
            declared = (info.compressor.family, info.compressor.budget_options or ())
        if info.compressor.settings is not None:
            settings = {k: _text(v) for k, v in info.compressor.settings.items()
                        if v is not None}
        if info.target is not None and info.target.name:
            base = info.target.name
    # the lexical reader ignores the task's instruction, which is all zero_shot removes
    reader = info is not None and bool(info.reader)
    remark = "= none for this target" if compressor == "zero_shot" and reader else ""
    return RowKey(base, compressor, tuple(sorted(_budget_used(settings).items())), version,
                  remark=remark, family=declared[0], budget_options=declared[1])


def _registered(compressor: str) -> tuple[str, tuple[str, ...]]:
    """Family and budget options as compressor ``compressor`` declares them in this
    installation (for results recorded without them); undeclared when it is not installed."""
    try:
        capabilities = capabilities_of(compressor)
    except UnknownCompressorError:
        return UNDECLARED_FAMILY, ()
    return capabilities.family.value, capabilities.budget_options


def _budget_used(settings: dict[str, str]) -> dict[str, str]:
    """Settings without ``rate`` when ``target_tokens`` set the budget (rate was not used)."""
    if settings.get("target_tokens", "").strip().lower() in ("", "none", "null"):
        return {k: v for k, v in settings.items() if k != "target_tokens"}
    return {k: v for k, v in settings.items() if k != "rate"}


_PATH_RE = re.compile(r"(?:/[^/\[\]\s,()]+)+/([^/\[\]\s,()]+)")


def short_name(text: str, depth: int = 1) -> str:
    """``text`` with every absolute path shortened to its last ``depth`` components, for
    display (a path with no more components is kept whole)."""
    return _PATH_RE.sub(lambda match: _tail(match.group(0), depth), text)


def _tail(path: str, depth: int) -> str:
    """The last ``depth`` components of ``path``, or ``path`` itself if it has no more."""
    parts = path.split("/")
    return path if depth >= len(parts) else "/".join(parts[-depth:])


def model_name(text: str, depth: int = 1) -> str:
    """A model as readers know it: an HF id as is (``org/name``), a local folder by its name,
    or by its last ``depth`` path components (absolute, ``./``, ``../`` or ``~/`` paths;
    trailing slashes ignored)."""
    text = text.strip()
    if text.startswith(("/", "./", "../", "~/")) or text in (".", ".."):
        return _tail(text.rstrip("/"), depth)
    return short_name(text, depth)


def find_results(paths: Iterable[Path]) -> list[Path]:
    """All ``results_*.json`` files under the given folders (or the files themselves)."""
    found: list[Path] = []
    for path in paths:
        if path.is_file():
            found.append(path)
        elif path.is_dir():
            found.extend(sorted(p for p in path.rglob("results_*.json") if p.is_file()))
        else:
            raise LeaderboardError(f"{path}: no such file or folder")
    if not found:
        names = ", ".join(str(p) for p in paths)
        raise LeaderboardError(f"no results_*.json found under {names}")
    return found


def _metric_values(
    entry: Mapping[str, Any], where: str
) -> tuple[dict[str, float], dict[str, float | None]]:
    metrics: dict[str, float] = {}
    stderrs: dict[str, float | None] = {}
    for name, value in entry.items():
        if "," not in name or "_stderr," in name:
            continue
        metric, _, filt = name.partition(",")
        if metric in metrics and filt != "none":
            continue
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise LeaderboardError(f"{where}: {name} must be a number, got {value!r}")
        metrics[metric] = finite(value, where, name)
        stderr_name = f"{metric}_stderr,{filt}"
        stderrs[metric] = _stderr(entry.get(stderr_name), where, stderr_name)
    return metrics, stderrs


NOT_FINITE = "not a finite number (NaN, Infinity or too large for a float)"


def finite(value: float, where: str, name: str) -> float:
    """``value`` as a float, refused when it is NaN or infinite (JSON's ``NaN``,
    ``Infinity`` or a number too large for a float)."""
    number = _as_finite(value)
    if number is None:
        raise LeaderboardError(f"{where}: field {name!r}: {NOT_FINITE}")
    return number


def _as_finite(value: float) -> float | None:
    """``value`` as a finite float, or None (an integer too large for a float included)."""
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _stderr(value: Any, where: str, name: str) -> float | None:
    """A standard error: a finite number >= 0, or None where lm-eval has none (``N/A``)."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    if finite(value, where, name) < 0:
        raise LeaderboardError(f"{where}: field {name!r}: {value!r} is negative; a standard "
                               "error is not")
    return float(value)


def load_run(path: Path, with_samples: bool = True) -> Run:
    """Read one results file (and, if wanted, its ``samples_<task>_<date>.jsonl`` files)."""
    match = RESULTS_RE.match(path.name)
    date = match.group("date") if match else ""
    try:
        raw = path.read_bytes()
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise _utf8_error(path, raw, exc, _RESULTS_HINT) from exc
    except (OSError, json.JSONDecodeError) as exc:
        raise LeaderboardError(f"{path}: not a readable lm-eval results file: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("results"), dict):
        raise LeaderboardError(f"{path}: field 'results' missing: not an lm-eval results file")
    config = data.get("config")
    if not isinstance(config, dict):
        raise LeaderboardError(f"{path}: field 'config' missing or not an object")
    key = row_key(config, str(data.get("model_name", "")), str(path))
    # standalone tasks appear in group_subtasks with an empty list; groups have members
    subtasks = data.get("group_subtasks") or {}
    groups = set(data.get("groups") or {}) | {name for name, members in subtasks.items() if members}
    versions = data.get("versions") or {}
    hib_all = data.get("higher_is_better") or {}
    n_samples = data.get("n-samples") or {}
    tasks: dict[str, TaskResult] = {}
    for task, entry in data["results"].items():
        if task in groups or not isinstance(entry, dict):
            continue
        metrics, stderrs = _metric_values(entry, f"{path}: results.{task}")
        hib = hib_all.get(task) or {}
        counts = n_samples.get(task) or {}
        tasks[task] = TaskResult(
            task=task,
            version=_text(versions.get(task, "")),
            metrics=metrics,
            stderrs=stderrs,
            higher_is_better={m: bool(hib.get(m, True)) for m in metrics},
            n_samples=_count(counts.get("effective")),
            n_available=_count(counts.get("original")),
        )
        if with_samples and date:
            sample_file = path.with_name(f"samples_{task}_{date}.jsonl")
            if sample_file.is_file():
                tasks[task].samples, tasks[task].measurements = read_samples(sample_file)
    return Run(path, key, date, str(data.get("lm_eval_version", "")), tasks,
               _limit(config.get("limit"), str(path)), run_environment(data, date),
               config, str(data.get("model_name", "")))


def _limit(value: Any, where: str) -> float | None:
    """lm-eval's ``config.limit``: a finite number, or None when unset."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    return finite(value, where, "config.limit")


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


_RESULTS_HINT = "run lm_eval again for this results file, or leave its folder out"
_SAMPLES_HINT = (
    "write it again with lm_eval --log_samples, or delete it to build without its samples"
)


def _utf8_error(
    path: Path, data: bytes, error: UnicodeDecodeError, hint: str, first_line: int = 1
) -> LeaderboardError:
    """The error for bytes ``data`` (starting at line ``first_line``) that are not UTF-8."""
    line = first_line + data.count(b"\n", 0, error.start)
    problem = f"not UTF-8 (byte 0x{data[error.start]:02x})"
    return LeaderboardError(problem, path, line, hint=hint)


def read_samples(path: Path) -> tuple[list[dict[str, Any]], list[dict[str, float]]]:
    """Read an lm-eval ``samples_*.jsonl`` file, naming the line of a broken record: the
    samples, and the measured metrics of each (:func:`bench.results_record.read_measurements`)."""
    records: list[dict[str, Any]] = []
    measurements: list[dict[str, float]] = []
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise _utf8_error(path, raw, exc, _SAMPLES_HINT, number) from exc
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise LeaderboardError(f"{path}:{number}: invalid JSON: {exc}; "
                                       f"{_SAMPLES_HINT}") from exc
            if not isinstance(record, dict):
                raise LeaderboardError(f"{path}:{number}: a sample must be a JSON object; "
                                       f"{_SAMPLES_HINT}")
            _check_finite_fields(record, f"{path}:{number}")
            records.append(record)
            measurements.append(read_measurements(record, str(path), number, _SAMPLES_HINT))
    return records, measurements


def _check_finite_fields(record: Mapping[str, Any], where: str) -> None:
    """Refuse a sample whose scores or measurements (its top-level numbers) are not finite."""
    for name, value in record.items():
        if isinstance(value, int | float) and _as_finite(value) is None:
            raise LeaderboardError(f"{where}: field {name!r}: {NOT_FINITE}; {_SAMPLES_HINT}")


def check_versions(runs: Sequence[Run]) -> None:
    """Refuse runs that evaluated the same task at different task versions."""
    seen: dict[str, dict[str, list[Path]]] = {}
    for run in runs:
        for task, result in run.tasks.items():
            seen.setdefault(task, {}).setdefault(result.version, []).append(run.path)
    problems = []
    for task, by_version in sorted(seen.items()):
        if len(by_version) > 1:
            detail = "; ".join(
                f"version {version}: {', '.join(str(p) for p in paths)}"
                for version, paths in sorted(by_version.items())
            )
            problems.append(f"task {task} has different versions across runs ({detail})")
    if problems:
        raise LeaderboardError("refusing to mix task versions:\n  " + "\n  ".join(problems))


def merge_runs(runs: Sequence[Run]) -> dict[RowKey, dict[str, TaskResult]]:
    """Group task results by row; a task measured twice for one row keeps the newest run."""
    rows: dict[RowKey, dict[str, tuple[str, Path, TaskResult]]] = {}
    for run in runs:
        row = rows.setdefault(run.key, {})
        for task, result in run.tasks.items():
            old = row.get(task)
            if old is not None:
                newer = run if run.date >= old[0] else None
                kept = run.path if newer else old[1]
                print(
                    f"warning: {task} of {run.key.model_label} / {run.key.label} is in both "
                    f"{old[1]} and {run.path}; using {kept}",
                    file=sys.stderr,
                )
                if newer is None:
                    continue
            row[task] = (run.date, run.path, result)
    return {
        key: {t: item[2] for t, item in sorted(tasks.items())}
        for key, tasks in sorted(rows.items())
    }
