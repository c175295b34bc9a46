"""The compressbench QA and regeneration metrics as Hugging Face ``evaluate`` modules.

They ship inside the wheel and load offline from their installed folder::

    import evaluate
    from bench.evaluate_metrics import metric_path

    qa = evaluate.load(metric_path("compressbench_qa"))
    qa.compute(predictions=["Paris"], references=[["Paris", "the city of Paris"]])

Both compute their scores with :mod:`bench.metrics`, so they give the leaderboard's numbers.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

__all__ = ["METRIC_MODULES", "metric_path"]

METRIC_MODULES = ("compressbench_qa", "compressbench_regeneration")


def metric_path(name: str) -> str:
    """The installed folder of metric module ``name``, for ``evaluate.load``."""
    if name not in METRIC_MODULES:
        raise ValueError(f"unknown compressbench metric module {name!r}; "
                         f"choose from {', '.join(METRIC_MODULES)}")
    return str(Path(str(files(__name__).joinpath(name))))
