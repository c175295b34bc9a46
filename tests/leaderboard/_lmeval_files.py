"""Writing results files in lm-eval 0.4.13's layout for tests that need exact numbers."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def write_results(
    folder: Path,
    model_args: str | dict[str, Any],
    scores: Mapping[str, Mapping[str, float]],
    date: str = "2026-01-01T00-00-00.000000",
    version: float = 1.0,
    model: str = "compressed",
    extra_config: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """A ``results_<date>.json`` with ``scores[task][metric]`` (0..1) and the usual sections
    (``extra``: more top-level fields, e.g. ``pretty_env_info``)."""
    results = {
        task: {
            "alias": task,
            **{f"{metric},none": value for metric, value in metrics.items()},
            **{f"{metric}_stderr,none": 0.01 for metric in metrics},
        }
        for task, metrics in scores.items()
    }
    data = {
        "results": results,
        "group_subtasks": {task: [] for task in scores},
        "configs": {task: {"task": task, "metadata": {"version": version}} for task in scores},
        "versions": {task: version for task in scores},
        "n-shot": {task: 0 for task in scores},
        "higher_is_better": {task: {m: True for m in metrics} for task, metrics in scores.items()},
        "n-samples": {task: {"original": 100, "effective": 100} for task in scores},
        "config": {"model": model, "model_args": model_args, **(extra_config or {})},
        "lm_eval_version": "0.4.13",
        "date": 1767225600.0,
        **(extra or {}),
    }
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"results_{date}.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path
