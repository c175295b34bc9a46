"""Sweeps: several compressors and option values through lm-eval in one process, resumable,
ending with the leaderboard (``python -m bench sweep``); the runs that differ only in budget
share the compressor work that does not depend on it."""

from bench.sweep.combinations import Combination, check_combinations, parse_compressors
from bench.sweep.runner import (
    SweepOutcome,
    SweepRun,
    SweepSettings,
    build_page,
    prepare_sweep,
    run_sweep,
)

__all__ = [
    "Combination",
    "SweepOutcome",
    "SweepRun",
    "SweepSettings",
    "build_page",
    "check_combinations",
    "parse_compressors",
    "prepare_sweep",
    "run_sweep",
]
