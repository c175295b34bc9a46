"""Running lm-eval in-process on the project's tasks and saving results like its CLI."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


def run_lm_eval(
    model: str,
    model_args: str,
    tasks: Sequence[str],
    output_path: Path,
    limit: int | None = None,
    batch_size: int | str = 1,
    log_samples: bool = True,
    device: str | None = None,
) -> dict[str, Any]:
    """``lm_eval --model M --model_args A --tasks T --output_path O --log_samples``, in-process.

    Only the project's task folder is indexed (no built-in tasks), which saves seconds per run.
    Writes ``O/<model>/results_<date>.json`` and ``samples_<task>_<date>.jsonl`` as the CLI does.
    """
    import torch
    from lm_eval import simple_evaluate
    from lm_eval.loggers import EvaluationTracker
    from lm_eval.tasks import TaskManager

    from bench.lmeval.plugin import register

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    register()  # also adds the project's task folder to every TaskManager
    manager = TaskManager(include_defaults=False)
    tracker = EvaluationTracker(output_path=str(output_path))
    results = simple_evaluate(
        model=model, model_args=model_args, tasks=list(tasks), task_manager=manager,
        limit=limit, batch_size=batch_size, device=device, log_samples=log_samples,
        evaluation_tracker=tracker,
    )
    if results is None:
        return {}
    samples = results.pop("samples", None)
    tracker.save_results_aggregated(results=results, samples=samples)
    if samples:
        for task_name in results.get("configs", {}):
            if task_name in samples:
                tracker.save_results_samples(task_name=task_name, samples=samples[task_name])
    logger.info("results: %s", json.dumps(results.get("results", {}), default=str)[:500])
    return dict(results)
