"""``build``: read runs, make the tables, plots and page, and write every export."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from leaderboard._errors import LeaderboardError
from leaderboard._export import dumps, table_json, to_csv, to_latex, to_markdown, write_atomic
from leaderboard._html import render_html
from leaderboard._metrics import METRIC_STYLES
from leaderboard._plots import all_plots
from leaderboard._runs import Run, check_versions, find_results, load_run, merge_runs
from leaderboard._samples import viewer_data
from leaderboard._tables import (
    Table,
    delta_table,
    efficiency_table,
    normalised_table,
    raw_table,
)

SCHEMA_VERSION = 1


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
    """Read every results file under ``paths`` (with a progress bar) and check versions."""
    files = find_results(paths)
    runs = [
        load_run(path, with_samples)
        for path in tqdm(files, desc="results", unit="file", disable=len(files) < 5)
    ]
    check_versions(runs)
    return runs


def make_tables(runs: Sequence[Run], options: BuildOptions) -> list[Table]:
    """The raw, normalised, delta and efficiency tables of the runs."""
    rows = merge_runs(runs)
    names = METRIC_STYLES[options.metric_style]
    tables = [raw_table(rows, names)]
    normalised = normalised_table(rows, names, options.normalise_to)
    if normalised is not None:
        tables.append(normalised)
    tables.append(delta_table(rows, names, options.baseline_compressor))
    efficiency = efficiency_table(rows)
    if efficiency is not None:
        tables.append(efficiency)
    return tables


def build(paths: Sequence[Path], options: BuildOptions) -> list[Path]:
    """Write Markdown, CSV, LaTeX, JSON and ``index.html`` into ``options.out``."""
    if options.metric_style not in METRIC_STYLES:
        raise LeaderboardError(f"unknown metric style {options.metric_style!r}")
    runs = read_runs(paths)
    tables = make_tables(runs, options)
    rows = merge_runs(runs)
    names = METRIC_STYLES[options.metric_style]
    out = options.out
    written: list[Path] = []

    def emit(name: str, text: str) -> None:
        write_atomic(out / name, text)
        written.append(out / name)

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
                    }
                    for run in runs
                ],
                "task_versions": versions,
                "tables": [table_json(table) for table in tables],
            }
        ),
    )
    emit(
        "index.html",
        render_html(
            title=options.title,
            tables=tables,
            plots=all_plots(rows, names),
            samples=viewer_data(rows, names, options.max_samples),
            sample_limit=options.max_samples,
            runs=[str(run.path) for run in runs],
            versions=dict(sorted(versions.items())),
            lm_eval_versions=sorted({run.lm_eval_version for run in runs}),
        ),
    )
    return written
