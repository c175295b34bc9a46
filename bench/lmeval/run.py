"""Running lm-eval in-process on the project's tasks and saving results like its CLI."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.substrate.errors import InputError

logger = logging.getLogger(__name__)


def default_device() -> str:
    """``cuda`` when a GPU is visible, else ``cpu``."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def parse_model_args(text: str) -> dict[str, Any]:
    """``--model_args`` as lm-eval reads them (``true`` a bool, ``0.5`` a float ...)."""
    from lm_eval.utils import simple_parse_args_string

    parsed: dict[str, Any] = simple_parse_args_string(text)
    return parsed


def model_class(model: str) -> type:
    """The lm-eval model class registered as ``model`` (the project's models included)."""
    from lm_eval.api.registry import get_model, model_registry

    from bench.lmeval.plugin import register

    register()
    if model not in model_registry:
        raise InputError(f"unknown lm-eval model {model!r}", field="--model",
                         hint=f"known models: {', '.join(sorted(model_registry))}")
    found: type = get_model(model)
    return found


def seed_as_lm_eval() -> None:
    """Seed Python's, NumPy's and torch's generators with ``simple_evaluate``'s defaults, as
    it does before it builds a model."""
    import inspect
    import random

    import numpy as np
    import torch
    from lm_eval import simple_evaluate

    defaults = inspect.signature(simple_evaluate).parameters
    random.seed(defaults["random_seed"].default)
    np.random.seed(defaults["numpy_random_seed"].default)
    torch.manual_seed(defaults["torch_random_seed"].default)


def load_model(model: str, model_args: str, batch_size: int | str = 1,
               device: str | None = None) -> Any:
    """The lm-eval model ``model`` built from ``model_args`` as ``simple_evaluate`` builds it
    (the same object, from the same random state, the ``lm_eval`` command answers with)."""
    extra = {"batch_size": batch_size, "max_batch_size": None,
             "device": device or default_device()}
    seed_as_lm_eval()
    return model_class(model).create_from_arg_string(model_args, extra)  # type: ignore[attr-defined]


def run_lm_eval(
    model: str,
    model_args: str,
    tasks: Sequence[str],
    output_path: Path,
    limit: int | None = None,
    batch_size: int | str = 1,
    log_samples: bool = True,
    device: str | None = None,
    loaded: Any = None,
) -> dict[str, Any]:
    """``lm_eval --model M --model_args A --tasks T --output_path O --log_samples``, in-process.

    Only the project's task folder is indexed (no built-in tasks), which saves seconds per run.
    Writes ``O/<model>/results_<date>.json`` and ``samples_<task>_<date>.jsonl`` as the CLI does.
    ``loaded``: an instance of ``model`` already built (see :func:`load_model`) answers instead
    of a new one; the results record ``model`` and ``model_args`` as if it had been built here.
    """
    from lm_eval import simple_evaluate
    from lm_eval.loggers import EvaluationTracker

    from bench.lmeval.plugin import register

    device = device or default_device()
    register()  # also adds the project's task folder to every TaskManager
    tracker = EvaluationTracker(output_path=str(output_path))
    results = simple_evaluate(
        model=model if loaded is None else loaded, model_args=model_args, tasks=list(tasks),
        task_manager=project_task_manager(), limit=limit, batch_size=batch_size, device=device,
        log_samples=log_samples, evaluation_tracker=tracker,
    )
    if results is None:
        return {}
    if loaded is not None:  # lm-eval names a model object by its class or its weights' path
        results["config"]["model"] = model
        tracker.general_config_tracker.model_source = model
    samples = results.pop("samples", None)
    tracker.save_results_aggregated(results=results, samples=samples)
    if samples:
        for task_name in results.get("configs", {}):
            if task_name in samples:
                tracker.save_results_samples(task_name=task_name, samples=samples[task_name])
    logger.info("results: %s", json.dumps(results.get("results", {}), default=str)[:500])
    return dict(results)


def project_task_manager() -> Any:
    """An lm-eval ``TaskManager`` that indexes the project's tasks only."""
    from lm_eval.tasks import TaskManager

    from bench.lmeval.plugin import register

    register()
    return TaskManager(include_defaults=False)
