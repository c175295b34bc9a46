"""Shared fixtures of the leaderboard tests."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

FIXTURE_RUNS = Path(__file__).resolve().parent / "fixtures" / "runs"


@pytest.fixture
def runs_copy(tmp_path: Path) -> Path:
    """A writable copy of the committed lm-eval run folders."""
    target = tmp_path / "runs"
    shutil.copytree(FIXTURE_RUNS, target)
    return target


def fixture_sample_count() -> int:
    """How many samples the committed runs logged."""
    return sum(
        len(path.read_text(encoding="utf-8").splitlines())
        for path in FIXTURE_RUNS.rglob("samples_*.jsonl")
    )


def fixture_score_count() -> int:
    """How many (run, task, score metric) values the committed runs hold."""
    count = 0
    for path in FIXTURE_RUNS.rglob("results_*.json"):
        data = json.loads(path.read_text(encoding="utf-8"))
        for task, metrics in data["higher_is_better"].items():
            if task in data["results"] and task not in data.get("groups", {}):
                count += sum(1 for better in metrics.values() if better)
    return count


def fixture_results(run: str) -> dict[str, Any]:
    """The results file of the committed run folder ``run``."""
    (path,) = (FIXTURE_RUNS / run).rglob("results_*.json")
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data
