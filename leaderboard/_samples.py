"""Per-sample records for the HTML viewer, taken from lm-eval's ``samples_*.jsonl``."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from bench import specs
from leaderboard._metrics import MetricNames
from leaderboard._tables import Rows


def _prompt(arguments: Any) -> str:
    if isinstance(arguments, dict):
        first: Any = next(iter(arguments.values()), {})
        if isinstance(first, dict):
            return str(first.get("arg_0", ""))
    if isinstance(arguments, list) and arguments:
        head = arguments[0]
        return str(head[0] if isinstance(head, list) and head else head)
    return ""


def _answer(record: dict[str, Any]) -> str:
    value: Any = record.get("filtered_resps", record.get("resps", ""))
    while isinstance(value, list):
        value = value[0] if value else ""
    return str(value)


def _gold(doc: dict[str, Any], record: dict[str, Any]) -> str:
    answers = doc.get("answers")
    if isinstance(answers, list):
        return " | ".join(str(a) for a in answers)
    return str(record.get("target", doc.get("text", "")))


def _finite(value: Any) -> float | None:
    """``value`` rounded to 4 significant digits for display, or ``None`` if not a number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(f"{value:.4g}") if math.isfinite(value) else None


def sample_view(record: dict[str, Any], measured: Mapping[str, float],
                names: MetricNames) -> dict[str, Any]:
    """The fields the viewer shows for one logged sample (``measured``: its record's
    measured metrics)."""
    doc = record.get("doc") if isinstance(record.get("doc"), dict) else {}
    assert isinstance(doc, dict)
    score_metric = next(
        (
            m
            for m in (names.f1, names.rouge, names.em, names.bleu)
            if isinstance(record.get(m), int | float)
        ),
        None,
    )
    return {
        "doc_id": record.get("doc_id"),
        "context": str(doc.get("context", doc.get("text", ""))),
        "prompt": _prompt(record.get("arguments")),
        "question": str(doc.get("question", "")),
        "answer": _answer(record),
        "gold": _gold(doc, record),
        "score_metric": score_metric or "",
        "score": _finite(record.get(score_metric)) if score_metric else None,
        "efficiency": {
            m: v for m in specs.metric_names("efficiency")
            if (v := _finite(measured.get(m))) is not None
        },
    }


def viewer_data(rows: Rows, names: MetricNames, limit: int) -> list[dict[str, Any]]:
    """Up to ``limit`` samples per row and task, with their row and task names."""
    out = []
    for key, tasks in rows.items():
        for task, result in tasks.items():
            logged = zip(result.samples[:limit], result.measurements[:limit], strict=True)
            for record, measured in logged:
                out.append(
                    {
                        "row": f"{key.model_label} / {key.title}",
                        "task": task,
                        **sample_view(record, measured, names),
                    }
                )
    return out
