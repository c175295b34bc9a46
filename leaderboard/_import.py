"""Reading ``leaderboard export`` folders back as runs, so that ``build`` and ``check`` take
them beside lm-eval run folders (another group's submission merges into one page).

An export is a folder whose ``manifest.json`` names the builder ``leaderboard export``
(:mod:`leaderboard._results_data`); it is checked against its manifest first, and its schema
version must be one this reader knows (same major version).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from bench import specs
from bench.results_record import MEASURED_KINDS
from bench.substrate.errors import InputError
from bench.substrate.manifest import MANIFEST_NAME, verify_folder
from leaderboard._environment import RunEnvironment
from leaderboard._results_data import BUILDER, RESULTS, RUNS, SAMPLES, SCHEMA_VERSION
from leaderboard._runs import RESULTS_RE, Run, TaskResult, find_results, row_key

_REBUILD = "python -m leaderboard export RUNS... --out {folder}"
_HINT = "export the runs again with this compressbench"


def is_export(path: Path) -> bool:
    """Whether ``path`` is a folder written by ``leaderboard export``."""
    manifest = path / MANIFEST_NAME
    if not manifest.is_file():
        return False
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(data, dict) and data.get("builder") == BUILDER


def find_inputs(paths: Sequence[Path]) -> tuple[list[Path], list[Path]]:
    """The ``results_*.json`` files and the export folders under ``paths`` (each a results
    file, a folder of runs, an export, or a folder holding exports)."""
    files: list[Path] = []
    exports: list[Path] = []
    for path in paths:
        if path.is_dir() and is_export(path):
            exports.append(path)
            continue
        nested = _nested_exports(path)
        exports += nested
        if nested and not _holds_results(path, nested):
            continue
        files += [found for found in find_results([path])
                  if not any(found.is_relative_to(export) for export in nested)]
    return files, exports


def _nested_exports(path: Path) -> list[Path]:
    if not path.is_dir():
        return []
    return sorted(manifest.parent for manifest in path.rglob(MANIFEST_NAME)
                  if is_export(manifest.parent))


def _holds_results(path: Path, exports: Sequence[Path]) -> bool:
    return any(RESULTS_RE.match(found.name) and found.is_file()
               and not any(found.is_relative_to(export) for export in exports)
               for found in path.rglob("results_*.json"))


def read_export(folder: Path, with_samples: bool = True) -> list[Run]:
    """The runs of export ``folder``, as :func:`leaderboard._runs.load_run` reads them."""
    manifest = verify_folder(folder, _REBUILD, (RUNS, RESULTS, SAMPLES))
    _check_version(manifest.get("schema_version"), folder / MANIFEST_NAME)
    runs = [_run(folder, row) for row in _rows(folder, RUNS)]
    for row in _rows(folder, RESULTS):
        _add_metric(runs, row, folder)
    if with_samples:
        for row in _rows(folder, SAMPLES):
            _add_sample(runs, row, folder)
    return runs


def _check_version(version: Any, where: Path) -> None:
    major = SCHEMA_VERSION.partition(".")[0]
    if not isinstance(version, str) or version.partition(".")[0] != major:
        raise InputError(f"export schema {version!r} is not supported (this compressbench "
                         f"reads {major}.x)", where, field="schema_version", hint=_HINT)


def _rows(folder: Path, name: str) -> Iterator[dict[str, Any]]:
    for number, row in enumerate(pq.read_table(folder / name).to_pylist()):
        _check_version(row.get("schema_version"), folder / f"{name} row {number}")
        yield row


def _run(folder: Path, row: dict[str, Any]) -> Run:
    where = f"{folder / RUNS}: run {row['run']}"
    config = json.loads(row["config"])
    key = row_key(config, row["model_name"], where)
    return Run(path=folder / row["source"], key=key, date=row["date"],
               lm_eval_version=row["lm_eval_version"], tasks={}, limit=row["limit"],
               environment=_environment(json.loads(row["environment"])), config=config,
               model_name=row["model_name"])


def _environment(data: dict[str, Any]) -> RunEnvironment:
    known = {field.name for field in dataclasses.fields(RunEnvironment)}
    return RunEnvironment(**{name: value for name, value in data.items() if name in known})


def _run_of(runs: Sequence[Run], row: dict[str, Any], folder: Path, table: str) -> Run:
    number = int(row["run"])
    if not 0 <= number < len(runs):
        raise InputError(f"run {number} is not in {RUNS}", folder / table, field="run",
                         hint=_HINT)
    return runs[number]


def _add_metric(runs: Sequence[Run], row: dict[str, Any], folder: Path) -> None:
    run = _run_of(runs, row, folder, RESULTS)
    task = row["task"]
    if task not in run.tasks:
        run.tasks[task] = TaskResult(task, row["task_version"], {}, {}, {}, row["n_samples"],
                                     n_available=row["n_available"])
    result = run.tasks[task]
    metric = row["metric"]
    if metric is not None:
        result.metrics[metric] = row["value"]
        result.stderrs[metric] = row["stderr"]
        result.higher_is_better[metric] = row["higher_is_better"]


def _add_sample(runs: Sequence[Run], row: dict[str, Any], folder: Path) -> None:
    result = _run_of(runs, row, folder, SAMPLES).tasks.get(row["task"])
    if result is None:
        raise InputError(f"task {row['task']!r} of run {row['run']} has samples but no "
                         "results", folder / SAMPLES, field="task", hint=_HINT)
    result.samples.append(json.loads(row["sample"]))
    result.measurements.append({name: row[name] for name in specs.metric_names(*MEASURED_KINDS)
                                if row.get(name) is not None})
