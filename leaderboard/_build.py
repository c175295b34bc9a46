"""``build``: read runs, make the tables, plots and page, and write every export.

The output folder is written as one unit: every file goes to a staging sibling that then
replaces the folder (:func:`bench.substrate.atomic.atomic_directory`), so a killed build leaves the
previous complete leaderboard, and ``manifest.json`` lists every file with its hash.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from bench.substrate.atomic import atomic_directory, atomic_write_text
from bench.substrate.manifest import MANIFEST_NAME, write_manifest
from leaderboard._errors import LeaderboardError
from leaderboard._export import (
    check_finite,
    dumps,
    table_json,
    to_csv,
    to_latex,
    to_markdown,
)
from leaderboard._html import render_html
from leaderboard._import import find_inputs, read_export
from leaderboard._labels import label_runs
from leaderboard._metrics import metric_style, metric_styles
from leaderboard._page import make_page
from leaderboard._runs import Run, check_versions, load_run, merge_runs
from leaderboard._samples import viewer_data
from leaderboard._tables import (
    Table,
    delta_table,
    efficiency_table,
    normalised_table,
    raw_table,
    split_unknown_tasks,
    unknown_tasks_note,
)

SCHEMA_VERSION = 1
OUTPUT_ENTRIES = ("*.md", "*.csv", "*.tex", "leaderboard.json", "index.html", MANIFEST_NAME)


@dataclass(frozen=True)
class BuildOptions:
    """What ``build`` makes."""

    out: Path
    title: str = "compressbench leaderboard"
    baseline_compressor: str = "none"
    normalise_to: str = "none"
    metric_style: str = "squad"
    max_samples: int = 50


def read_runs(paths: Sequence[Path], with_samples: bool = True) -> list[Run]:
    """Read every results file under ``paths`` (with a progress bar) and every
    ``leaderboard export`` folder among them, check versions and give every row a name no
    other row has."""
    files, exports = find_inputs(paths)
    runs = [
        load_run(path, with_samples)
        for path in tqdm(files, desc="results", unit="file", disable=len(files) < 50)
    ]
    runs += [run for export in exports for run in read_export(export, with_samples)]
    check_versions(runs)
    return label_runs(runs)


def make_tables(runs: Sequence[Run], options: BuildOptions) -> list[Table]:
    """The raw, normalised, delta and efficiency tables of the runs."""
    rows, unknown = split_unknown_tasks(merge_runs(runs))
    names = metric_style(options.metric_style)
    tables = [raw_table(rows, names)]
    if unknown:
        tables[0].notes.append(unknown_tasks_note(unknown))
        print(f"warning: {unknown_tasks_note(unknown)}", file=sys.stderr)
    normalised = normalised_table(rows, names, options.normalise_to)
    if normalised is not None:
        tables.append(normalised)
    tables.append(delta_table(rows, names, options.baseline_compressor))
    efficiency = efficiency_table(rows)
    if efficiency is not None:
        tables.append(efficiency)
    return tables


def rebuild_command(paths: Sequence[Path], options: BuildOptions) -> str:
    """The ``python -m leaderboard build`` command of this build (output: ``{folder}``)."""
    parts = ["python", "-m", "leaderboard", "build", *(os.path.abspath(p) for p in paths)]
    parts += ["--title", options.title, "--baseline-compressor", options.baseline_compressor]
    parts += ["--normalise-to", options.normalise_to]
    parts += ["--metric-style", options.metric_style, "--max-samples", str(options.max_samples)]
    return shlex.join(parts) + " --out {folder}"


def build(paths: Sequence[Path], options: BuildOptions) -> list[Path]:
    """Write Markdown, CSV, LaTeX, JSON and ``index.html`` into ``options.out`` as one unit."""
    if options.metric_style not in metric_styles():
        raise LeaderboardError(f"unknown metric style {options.metric_style!r}")
    runs = read_runs(paths)
    with atomic_directory(options.out, owned=OUTPUT_ENTRIES) as staging:
        names = _write_exports(runs, options, staging)
        write_manifest(staging, {"builder": "leaderboard", "schema_version": SCHEMA_VERSION},
                       rebuild_command(paths, options))
    return [options.out / name for name in names]


def _write_exports(runs: Sequence[Run], options: BuildOptions, out: Path) -> list[str]:
    tables = make_tables(runs, options)
    check_finite(tables)
    rows, _unknown = split_unknown_tasks(merge_runs(runs))
    names = metric_style(options.metric_style)
    written: list[str] = []

    def emit(name: str, text: str) -> None:
        atomic_write_text(out / name, text)
        written.append(name)

    emit("leaderboard.md", to_markdown(tables, options.title))
    for table in tables:
        emit(f"{table.name}.md", to_markdown([table], options.title))
        emit(f"{table.name}.csv", to_csv(table))
        emit(f"{table.name}.tex", to_latex(table))
    versions = {task: result.version for run in runs for task, result in sorted(run.tasks.items())}
    emit(
        "leaderboard.json",
        dumps(
            {
                "schema": "compressbench-leaderboard",
                "schema_version": SCHEMA_VERSION,
                "title": options.title,
                "runs": [
                    {
                        "path": str(run.path),
                        "row": run.key.to_json(),
                        "date": run.date,
                        "lm_eval_version": run.lm_eval_version,
                        "limit": run.limit,
                    }
                    for run in runs
                ],
                "task_versions": versions,
                "tables": [table_json(table) for table in tables],
            }
        ),
    )
    page = make_page(options.title, runs, rows, names, tables, options.normalise_to,
                     viewer_data(rows, names, options.max_samples), options.max_samples)
    emit("index.html", render_html(page))
    return written
