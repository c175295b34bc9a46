"""Plots of score vs compression and vs context length, as base64 PNG (matplotlib, Agg)."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from leaderboard._metrics import QA_TASKS, REGENERATION_TASKS, MetricNames
from leaderboard._runs import TaskResult
from leaderboard._tables import Rows, efficiency_values


@dataclass(frozen=True)
class Plot:
    """A rendered figure: title, alt text and PNG bytes in base64."""

    name: str
    title: str
    alt: str
    png_base64: str


def _render(fig: Figure) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _mean_score(
    results: Mapping[str, TaskResult], tasks: Iterable[str], metric: str
) -> float | None:
    values = [
        results[t].metrics[metric] * 100
        for t in tasks
        if t in results and metric in results[t].metrics
    ]
    return sum(values) / len(values) if values else None


def score_vs_compression(rows: Rows, names: MetricNames) -> Plot | None:
    """Mean QA F1 and mean Rouge-L-F against the achieved compression (original/compressed)."""
    panels: list[tuple[str, Iterable[str], str]] = [
        ("QA mean F1", QA_TASKS, names.f1),
        ("Regeneration mean Rouge-L-F", REGENERATION_TASKS, names.rouge),
    ]
    points: dict[str, list[tuple[str, float, float]]] = {}
    for title, tasks, metric in panels:
        for key in rows:
            ratio = efficiency_values(rows[key]).get("compression_ratio")
            score = _mean_score(rows[key], tasks, metric)
            if ratio and score is not None:
                points.setdefault(title, []).append(
                    (f"{key.model_label}: {key.label}", 1.0 / ratio, score)
                )
    if not points:
        return None
    fig, axes = plt.subplots(1, len(points), figsize=(5.5 * len(points), 4), squeeze=False)
    for ax, (title, items) in zip(axes[0], points.items(), strict=True):
        for label, x, y in items:
            ax.scatter([x], [y])
            ax.annotate(label, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.set_xscale("log")
        ax.set_xlabel("achieved compression (original / compressed tokens, log)")
        ax.set_ylabel(f"{title} (x100)")
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
    alt = "; ".join(
        f"{label}: {x:.1f}x, {y:.1f}" for items in points.values() for label, x, y in items
    )
    return Plot("score_vs_compression", "Score vs compression", alt, _render(fig))


def score_vs_length(rows: Rows, names: MetricNames) -> Plot | None:
    """Rouge-L-F of regeneration per context length, one line per row."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    alt_parts = []
    for key, results in rows.items():
        xs, ys = [], []
        for task, length in REGENERATION_TASKS.items():
            if task in results and names.rouge in results[task].metrics:
                xs.append(length)
                ys.append(results[task].metrics[names.rouge] * 100)
        if xs:
            label = f"{key.model_label}: {key.label}"
            ax.plot(xs, ys, marker="o", label=label)
            alt_parts.append(
                label + " " + ", ".join(f"{x}: {y:.1f}" for x, y in zip(xs, ys, strict=True))
            )
    if not alt_parts:
        plt.close(fig)
        return None
    ax.set_xlabel("context length (target-model tokens)")
    ax.set_ylabel(f"Rouge-L-F ({names.rouge}, x100)")
    ax.set_title("Regeneration vs context length")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    return Plot("score_vs_length", "Score vs context length", "; ".join(alt_parts), _render(fig))


def all_plots(rows: Rows, names: MetricNames) -> list[Plot]:
    """Every plot the data allows."""
    return [p for p in (score_vs_compression(rows, names), score_vs_length(rows, names)) if p]
