"""Leaderboard of compressbench: tables, plots, an HTML page and a regression check.

Reads lm-evaluation-harness output folders (``results_*.json`` and ``samples_*.jsonl``).
Command line: ``python -m leaderboard build RUNS... --out DIR`` and
``python -m leaderboard check RUNS... --baseline FILE``; ``python -m leaderboard run-folder
--model_args ARGS`` names a run folder after its model, compressor and settings.
"""

from leaderboard._build import BuildOptions, build, make_tables, read_runs
from leaderboard._check import compare, current_entries, read_baseline, write_baseline
from leaderboard._errors import LeaderboardError
from leaderboard._folders import run_folder_name
from leaderboard._metrics import Normalised, normalise, qa_tasks, regeneration_tasks
from leaderboard._runs import RowKey, Run, TaskResult, load_run, parse_model_args
from leaderboard._tables import Cell, Table

__all__ = [
    "BuildOptions",
    "Cell",
    "LeaderboardError",
    "Normalised",
    "RowKey",
    "Run",
    "Table",
    "TaskResult",
    "build",
    "compare",
    "current_entries",
    "load_run",
    "make_tables",
    "normalise",
    "parse_model_args",
    "qa_tasks",
    "read_baseline",
    "read_runs",
    "regeneration_tasks",
    "run_folder_name",
    "write_baseline",
]
