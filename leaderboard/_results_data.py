"""``export``: runs as a data set others can take, in Parquet, and an ``eval.yaml``.

The folder ``OUT`` holds three tables, each written by the deterministic Parquet writer
(:mod:`bench.substrate.parquet`) with a ``schema_version`` column:

* ``data/results.parquet``: one row per run x task x metric (value, standard error, whether
  higher is better), with the run's target model, compressor, settings and family;
* ``data/samples.parquet``: one row per logged sample, the whole lm-eval sample record as JSON
  and each measured metric (:data:`bench.results_record.MEASURED_KINDS`) as a column;
* ``data/runs.parquet``: one row per run: where it came from, its lm-eval ``config`` fields
  that name the row (``model``, ``model_args``, the typed results record
  ``config.compressbench`` with its own ``schema_version``), and its environment;

then ``eval.yaml`` (the Hugging Face Hub's Eval Results convention for the benchmark data
set: its name, description, evaluation framework and one task per lm-eval task of the runs),
a ``README.md`` data set card with the tables as configs (``--format hf-dataset``), and
``manifest.json`` (builder ``leaderboard export``) listing every file with its hash. The
folder is written as one unit (:func:`bench.substrate.atomic.atomic_directory`);
``leaderboard build`` reads it back beside run folders (:mod:`leaderboard._import`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import yaml

from bench import specs
from bench.results_record import MEASURED_KINDS, RECORD_KEY
from bench.substrate.atomic import atomic_directory, atomic_write_text
from bench.substrate.manifest import MANIFEST_NAME, write_manifest
from bench.substrate.parquet import write_parquet
from leaderboard._runs import Run, TaskResult

SCHEMA_VERSION = "1.0"
BUILDER = "leaderboard export"
FORMATS = ("parquet", "hf-dataset")
RESULTS, SAMPLES, RUNS = "data/results.parquet", "data/samples.parquet", "data/runs.parquet"
EVAL_YAML = "eval.yaml"
CARD = "README.md"
OWNED = ("data", EVAL_YAML, CARD, MANIFEST_NAME)
CONFIG_FIELDS = ("model", "model_args", RECORD_KEY)  # what a row's identity is read from

_KEY_COLUMNS: list[tuple[str, pa.DataType]] = [
    ("schema_version", pa.string()),
    ("run", pa.int32()),
    ("target", pa.string()),
    ("compressor", pa.string()),
    ("label", pa.string()),
    ("family", pa.string()),
    ("settings", pa.string()),
]
RUNS_SCHEMA = pa.schema([
    *_KEY_COLUMNS,
    ("compressor_version", pa.string()),
    ("stock_lm_eval", pa.bool_()),
    ("source", pa.string()),
    ("date", pa.string()),
    ("lm_eval_version", pa.string()),
    ("limit", pa.float64()),
    ("model_name", pa.string()),
    ("config", pa.string()),
    ("record_schema_version", pa.string()),
    ("environment", pa.string()),
])
RESULTS_SCHEMA = pa.schema([
    *_KEY_COLUMNS,
    ("task", pa.string()),
    ("task_version", pa.string()),
    ("n_samples", pa.int64()),
    ("n_available", pa.int64()),
    ("metric", pa.string()),
    ("metric_kind", pa.string()),
    ("value", pa.float64()),
    ("stderr", pa.float64()),
    ("higher_is_better", pa.bool_()),
])


def samples_schema() -> pa.Schema:
    """The samples table's columns: the run, task and position, each measured metric
    declared in :mod:`bench.specs`, and the logged sample as JSON."""
    measured = [(name, pa.float64()) for name in specs.metric_names(*MEASURED_KINDS)]
    return pa.schema([("schema_version", pa.string()), ("run", pa.int32()),
                      ("task", pa.string()), ("position", pa.int32()), ("doc_id", pa.int64()),
                      *measured, ("sample", pa.string())])


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _key_values(number: int, run: Run) -> dict[str, Any]:
    key = run.key
    return {"schema_version": SCHEMA_VERSION, "run": number, "target": key.model,
            "compressor": key.compressor, "label": key.label, "family": key.family,
            "settings": _json(dict(key.settings))}


def _run_row(number: int, run: Run, source: str) -> dict[str, Any]:
    record = run.config.get(RECORD_KEY)
    version = record.get("schema_version") if isinstance(record, dict) else None
    config = {name: run.config[name] for name in CONFIG_FIELDS if name in run.config}
    return {**_key_values(number, run), "compressor_version": run.key.version,
            "stock_lm_eval": run.key.stock, "source": source, "date": run.date,
            "lm_eval_version": run.lm_eval_version, "limit": run.limit,
            "model_name": run.model_name, "config": _json(config),
            "record_schema_version": None if version is None else str(version),
            "environment": _json(dataclasses.asdict(run.environment))}


def _metric_rows(result: TaskResult) -> Iterator[dict[str, Any]]:
    kinds = {metric.name: metric.kind for metric in specs.metrics()}
    task = {"task": result.task, "task_version": result.version,
            "n_samples": result.n_samples, "n_available": result.n_available}
    if not result.metrics:  # a task that reported no number still names the run's tasks
        yield {**task, "metric": None, "metric_kind": None, "value": None, "stderr": None,
               "higher_is_better": None}
    for metric, value in result.metrics.items():
        yield {**task, "metric": metric, "metric_kind": kinds.get(metric), "value": value,
               "stderr": result.stderrs.get(metric),
               "higher_is_better": result.higher_is_better.get(metric, True)}


def _sample_rows(number: int, result: TaskResult) -> Iterator[dict[str, Any]]:
    logged = zip(result.samples, result.measurements, strict=True)
    for position, (sample, measured) in enumerate(logged):
        doc_id = sample.get("doc_id")
        yield {"schema_version": SCHEMA_VERSION, "run": number, "task": result.task,
               "position": position,
               "doc_id": doc_id if isinstance(doc_id, int) and not isinstance(doc_id, bool)
               else None, **measured, "sample": json.dumps(sample, ensure_ascii=False)}


def _table(rows: list[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=schema) if rows else schema.empty_table()


def sources(runs: Sequence[Run], inputs: Sequence[Path]) -> list[str]:
    """Each run's results file relative to the folder holding the input it was found under
    (``runs/NAME/results_<date>.json`` for the input ``runs/``): no home folders shared."""
    bases = [Path(os.path.abspath(path)).parent for path in inputs]
    named: list[str] = []
    for run in runs:
        path = Path(os.path.abspath(run.path))
        base = next((b for b in bases if path.is_relative_to(b)), path.parent)
        named.append(path.relative_to(base).as_posix())
    return named


def tables(runs: Sequence[Run], inputs: Sequence[Path]) -> dict[str, pa.Table]:
    """The runs, results and samples tables of ``runs``, by their file names."""
    run_rows, result_rows, sample_rows = [], [], []
    for number, (run, source) in enumerate(zip(runs, sources(runs, inputs), strict=True)):
        run_rows.append(_run_row(number, run, source))
        for result in run.tasks.values():
            key = _key_values(number, run)
            result_rows += [{**key, **row} for row in _metric_rows(result)]
            sample_rows += list(_sample_rows(number, result))
    return {RUNS: _table(run_rows, RUNS_SCHEMA), RESULTS: _table(result_rows, RESULTS_SCHEMA),
            SAMPLES: _table(sample_rows, samples_schema())}


def _eval_tasks(ran: set[str]) -> list[dict[str, str]]:
    """The Eval Results tasks of the declared lm-eval tasks in ``ran``, in declaration order."""
    tasks = []
    for spec in specs.benchmarks():
        for task, length in spec.task_lengths().items():
            if task in ran:
                config = spec.name if length is None else f"{spec.name}_{length}"
                tasks.append({"id": task, "config": config, "split": "test"})
    return tasks


def eval_yaml(runs: Sequence[Run], title: str, framework: str | None = None) -> str:
    """``eval.yaml`` of the benchmark data set: one task per declared lm-eval task the runs
    ran (id: the task; config: the prepared benchmark; split: test). ``evaluation_framework``
    is written only when ``framework`` is given: the Hub refuses a name it does not list."""
    document: dict[str, object] = {
        "name": title,
        "description": "Prompt compression on unseen data: each task's context is compressed, "
                       "then answered or regenerated by the target model. Scores are the "
                       "task's F1 (QA) or Rouge-L-F (regeneration) x 100; one result per "
                       "target model, compressor and budget.",
    }
    if framework:
        document["evaluation_framework"] = framework
    document["tasks"] = _eval_tasks({task for run in runs for task in run.tasks})
    header = ("# A benchmark data set in the Hugging Face Hub's Eval Results convention\n"
              "# (https://huggingface.co/docs/hub/eval-results).\n")
    return header + str(yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=88))


def card(title: str) -> str:
    """``README.md`` of an ``hf-dataset`` export: its tables as configs, and what they hold."""
    configs = [{"config_name": name.removeprefix("data/").removesuffix(".parquet"),
                "data_files": [{"split": "train", "path": name}]}
               for name in (RESULTS, SAMPLES, RUNS)]
    front = yaml.safe_dump({"configs": configs, "tags": ["compressbench", "prompt-compression",
                                                         "evaluation"]}, sort_keys=False)
    return (f"---\n{front}---\n\n# {title}\n\n"
            f"Results of compressbench runs (schema version {SCHEMA_VERSION}).\n\n"
            "- `results`: one row per run, task and metric (`value`, `stderr`, "
            "`higher_is_better`), with the run's `target`, `compressor`, `settings` and "
            "`family`.\n"
            "- `samples`: one row per logged sample: the lm-eval sample record as JSON "
            "(`sample`) and its measured metrics as columns.\n"
            "- `runs`: one row per run: the lm-eval `config` fields that name it, the "
            "compressbench results record (`config.compressbench`) and the environment.\n\n"
            "`python -m leaderboard build THIS_FOLDER [RUNS...] --out page/` builds the "
            "leaderboard page from it, alone or beside other runs.\n")


def export_command(paths: Sequence[Path], fmt: str, title: str,
                   framework: str | None = None) -> str:
    """The ``python -m leaderboard export`` command of this export (output: ``{folder}``)."""
    parts = ["python", "-m", "leaderboard", "export", *(os.path.abspath(p) for p in paths),
             "--format", fmt, "--title", title]
    if framework:
        parts += ["--evaluation-framework", framework]
    return shlex.join(parts) + " --out {folder}"


def write_export(runs: Sequence[Run], inputs: Sequence[Path], out: Path, fmt: str,
                 title: str, framework: str | None = None) -> list[Path]:
    """Write the export of ``runs`` into ``out`` as one unit (``framework``: the
    ``evaluation_framework`` of ``eval.yaml``, none by default); returns the files written."""
    with atomic_directory(out, owned=OWNED) as staging:
        (staging / "data").mkdir()
        for name, table in tables(runs, inputs).items():
            write_parquet(table, staging / name)
        atomic_write_text(staging / EVAL_YAML, eval_yaml(runs, title, framework))
        if fmt == "hf-dataset":
            atomic_write_text(staging / CARD, card(title))
        manifest = write_manifest(staging, {"builder": BUILDER, "schema_version":
                                            SCHEMA_VERSION, "format": fmt},
                                  export_command(inputs, fmt, title, framework))
    return [out / name for name in (*manifest["files"], MANIFEST_NAME)]
