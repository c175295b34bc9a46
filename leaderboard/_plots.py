"""Plots of score vs compression, vs context length and vs bits, as base64 PNG (matplotlib, Agg).

Each plot has a legend outside its axes, grouped by compressor family (one marker per
family), plain ratio ticks (1×, 2×, 4×, ...) and error bars of one standard error.
"""

from __future__ import annotations

import base64
import io
import math
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.text import Text
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

from leaderboard._bits import FLOOR_COMPRESSOR, bits_per_token
from leaderboard._columns import Column, score_column
from leaderboard._families import (
    FAMILY_MARKERS,
    FAMILY_ORDER,
    FAMILY_TITLES,
    curve_keys,
    family,
)
from leaderboard._metrics import MetricNames, qa_tasks, regeneration_tasks
from leaderboard._runs import RowKey, TaskResult
from leaderboard._tables import Rows, efficiency_values, score

DPI = 100
PANEL_SIZE = (4.0, 3.3)  # inches per panel
LEGEND_INCHES = 2.7  # width of the legend column right of the panels
LEGEND_WIDTH = 34  # characters per legend line before wrapping


@dataclass(frozen=True)
class Plot:
    """A rendered figure: title, alt text and PNG bytes in base64."""

    name: str
    title: str
    alt: str
    png_base64: str


@dataclass
class Series:
    """Points of one legend entry, ``(x, y, standard error of y)``, and the base model
    (``group``) it belongs to."""

    label: str
    family: str
    group: str
    colour: str = "black"
    points: list[tuple[float, float, float | None]] = field(default_factory=list)


def render(fig: Figure) -> str:
    """The figure as base64 PNG, cropped to its artists (nothing clipped), then closed."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight", pad_inches=0.1,
                metadata={"Software": None})
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _order(key: RowKey) -> tuple[str, int, str]:
    return key.model_label, FAMILY_ORDER.index(family(key)), key.title


def colours(keys: Iterable[RowKey]) -> dict[RowKey, str]:
    """One colour per key (row or curve), the same in every panel of a figure."""
    ordered = sorted(set(keys), key=_order)
    cmap = plt.get_cmap("tab10" if len(ordered) <= 10 else "tab20")
    size = 10 if len(ordered) <= 10 else 20
    return {key: matplotlib.colors.to_hex(cmap(i % size)) for i, key in enumerate(ordered)}


def new_series(key: RowKey, colour: str) -> Series:
    """An empty series for a row or curve."""
    return Series(key.title, family(key), key.model_label, colour)


def _blank() -> Artist:
    return Line2D([], [], linestyle="none")


def add_legend(fig: Figure, series: Sequence[Series]) -> None:
    """One legend right of the axes: the entries under a bold header per base model (when
    there are several), then a key of the family markers; long labels wrapped."""
    ordered = sorted(series, key=lambda s: (s.group, FAMILY_ORDER.index(s.family), s.label))
    groups = list(dict.fromkeys(s.group for s in ordered))
    handles: list[Artist] = []
    labels: list[str] = []
    headers: list[str] = []

    def header(text: str) -> None:
        handles.append(_blank())
        labels.append(textwrap.fill(text, LEGEND_WIDTH))
        headers.append(labels[-1])

    for group in groups:
        if len(groups) > 1:
            header(group)
        for item in (s for s in ordered if s.group == group):
            handles.append(Line2D([], [], color=item.colour, marker=FAMILY_MARKERS[item.family],
                                  linestyle="-" if len(item.points) > 1 else "none"))
            labels.append(textwrap.fill(item.label, LEGEND_WIDTH, subsequent_indent="  "))
    header("marker: compressor family")
    for name in FAMILY_ORDER:
        if any(s.family == name for s in ordered):
            handles.append(Line2D([], [], color="grey", marker=FAMILY_MARKERS[name],
                                  linestyle="none"))
            labels.append(FAMILY_TITLES[name])
    legend = fig.legend(handles, labels, loc="outside right center", frameon=False,
                        fontsize=8, handlelength=1.8)
    for text in legend.get_texts():
        literal(text)
        if text.get_text() in headers:
            text.set_fontweight("bold")


def literal(text: Text) -> None:
    """Draw ``text`` as written: ``$``, ``_``, ``^`` in a name are not mathtext or TeX."""
    text.set_parse_math(False)
    text.set_usetex(False)


def draw(ax: Axes, item: Series, markersize: float = 6.0) -> None:
    """Points (joined when there are several) with one-standard-error bars."""
    points = sorted(item.points)
    xs = [x for x, _y, _e in points]
    ys = [y for _x, y, _e in points]
    errors = [math.nan if e is None else e for _x, _y, e in points]
    ax.errorbar(xs, ys, yerr=errors, color=item.colour, marker=FAMILY_MARKERS[item.family],
                markersize=markersize, linestyle="-" if len(points) > 1 else "none",
                linewidth=1.2, capsize=2, elinewidth=0.8)


def draw_all(ax: Axes, series: Sequence[Series]) -> None:
    """Every series; a marker that later ones cover is drawn larger, so that rows with the
    same numbers (e.g. none and a stock lm-eval run) stay visible as nested markers."""
    places = [{(x, round(y, 6)) for x, y, _e in item.points} for item in series]
    for i, item in enumerate(series):
        covered_by = sum(1 for later in places[i + 1:] if later & places[i])
        draw(ax, item, markersize=6.0 + 3.0 * covered_by)


def ratio_axis(ax: Axes, values: Sequence[float]) -> None:
    """A log2 axis with plain ticks 1×, 2×, 4×, ... covering ``values``."""
    low = 2.0 ** math.floor(math.log2(min(values)))
    high = 2.0 ** math.ceil(math.log2(max(values)))
    if high <= low:
        high = low * 2
    ticks = [low * 2.0**i for i in range(round(math.log2(high / low)) + 1)]
    ax.set_xscale("log", base=2)
    ax.set_xlim(low / 1.2, high * 1.2)
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _pos: f"{x:g}×"))


def _compression(tasks: Mapping[str, TaskResult], key: RowKey) -> float | None:
    ratio = efficiency_values(tasks).get("compression_ratio")
    if ratio:
        return 1.0 / ratio
    return 1.0 if key.stock else None  # a stock lm-eval run sees the whole context


def compression_series(rows: Rows, column: Column) -> list[Series]:
    """One series per curve (rows that differ only in their budget): (compression, score)."""
    curves = curve_keys(rows)
    palette = colours(curves.values())
    by_curve: dict[RowKey, Series] = {}
    for key, tasks in rows.items():
        x = _compression(tasks, key)
        y, error = score(tasks, column)
        if x is None or y is None:
            continue
        curve = curves[key]
        item = by_curve.setdefault(curve, new_series(curve, palette[curve]))
        item.points.append((x, y, error))
    return list(by_curve.values())


def figure_score_vs_compression(rows: Rows, names: MetricNames) -> Figure | None:
    """Mean QA F1 and mean Rouge-L-F against the achieved compression (original/compressed)."""
    panels = [
        ("QA", "mean F1 (x100)", score_column("QA F1", names.f1, tuple(qa_tasks()), "questions")),
        ("Regeneration", "mean Rouge-L-F (x100)",
         score_column("Rouge-L-F", names.rouge, tuple(regeneration_tasks()), "texts")),
    ]
    drawn = [(t, y, s) for t, y, c in panels if (s := compression_series(rows, c))]
    if not drawn:
        return None
    width, height = PANEL_SIZE
    fig, axes = plt.subplots(1, len(drawn), figsize=(width * len(drawn) + LEGEND_INCHES, height),
                             squeeze=False, layout="constrained")
    legend: dict[tuple[str, str], Series] = {}
    for ax, (title, ylabel, series) in zip(axes[0], drawn, strict=True):
        draw_all(ax, series)
        for item in series:
            legend.setdefault((item.group, item.label), item)
        ratio_axis(ax, [x for item in series for x, _y, _e in item.points])
        ax.set_xlabel("compression (original / compressed tokens)")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
    add_legend(fig, list(legend.values()))
    return fig


def length_series(rows: Rows, names: MetricNames) -> list[Series]:
    """One series per row: (context length, Rouge-L-F) over the lengths it ran."""
    palette = colours(rows)
    series = []
    for key, tasks in rows.items():
        item = new_series(key, palette[key])
        for task, length in regeneration_tasks().items():
            y, error = score(tasks, score_column("", names.rouge, (task,), "texts"))
            if y is not None:
                item.points.append((float(length), y, error))
        if item.points:
            series.append(item)
    return series


def lengths_present(rows: Rows) -> list[int]:
    """The regeneration lengths that any row ran."""
    return [n for task, n in regeneration_tasks().items() if any(task in t for t in rows.values())]


def figure_score_vs_length(rows: Rows, names: MetricNames) -> Figure | None:
    """Rouge-L-F of regeneration per context length, over the lengths present (two or more)."""
    lengths = lengths_present(rows)
    series = length_series(rows, names)
    if len(lengths) < 2 or not series:
        return None
    fig, ax = plt.subplots(figsize=(PANEL_SIZE[0] + LEGEND_INCHES, PANEL_SIZE[1]),
                           layout="constrained")
    draw_all(ax, series)
    ax.xaxis.set_major_locator(FixedLocator(lengths))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlim(lengths[0] - 0.08 * (lengths[-1] - lengths[0]),
                lengths[-1] + 0.08 * (lengths[-1] - lengths[0]))
    ax.set_xlabel("context length (target-model tokens)")
    ax.set_ylabel(f"Rouge-L-F ({names.rouge}, x100)")
    ax.set_title("Regeneration vs context length")
    ax.grid(True, alpha=0.3)
    add_legend(fig, series)
    return fig


def _alt(series: Sequence[Series], unit: str) -> str:
    return "; ".join(
        f"{item.group} / {item.label}: "
        + ", ".join(f"{x:g}{unit} {y:.1f}" for x, y, _e in sorted(item.points))
        for item in series
    )


def score_vs_compression(rows: Rows, names: MetricNames) -> Plot | None:
    """The score-vs-compression plot, rendered."""
    fig = figure_score_vs_compression(rows, names)
    if fig is None:
        return None
    column = score_column("QA F1", names.f1, tuple(qa_tasks()), "questions")
    alt = "QA mean F1 by compression: " + _alt(compression_series(rows, column), "×")
    return Plot("score_vs_compression", "Score vs compression", alt, render(fig))


def score_vs_length(rows: Rows, names: MetricNames) -> Plot | None:
    """The score-vs-length plot, rendered."""
    fig = figure_score_vs_length(rows, names)
    if fig is None:
        return None
    alt = "Rouge-L-F by context length: " + _alt(length_series(rows, names), " tokens")
    return Plot("score_vs_length", "Score vs context length", alt, render(fig))


def bits_series(rows: Rows, column: Column) -> list[Series]:
    """One series per curve: (compressed bits per original token on the column's tasks,
    score)."""
    curves = curve_keys(rows)
    palette = colours(curves.values())
    by_curve: dict[RowKey, Series] = {}
    for key, tasks in rows.items():
        x = bits_per_token(tasks, column.tasks)
        y, error = score(tasks, column)
        if not x or y is None:
            continue
        curve = curves[key]
        item = by_curve.setdefault(curve, new_series(curve, palette[curve]))
        item.points.append((x, y, error))
    return list(by_curve.values())


def bits_floors(rows: Rows, tasks: Sequence[str]) -> dict[str, float]:
    """Per base model, llmzip's bits per token on ``tasks``: the lossless floor."""
    floors: dict[str, float] = {}
    for key, results in rows.items():
        value = bits_per_token(results, tasks)
        if key.compressor == FLOOR_COMPRESSOR and not key.stock and value:
            floors[key.model_label] = min(value, floors.get(key.model_label, value))
    return floors


def _bits_panels(names: MetricNames) -> list[tuple[str, str, Column]]:
    return [
        ("QA", "mean F1 (x100)", score_column("QA F1", names.f1, tuple(qa_tasks()), "questions")),
        ("Regeneration", "mean Rouge-L-F (x100)",
         score_column("Rouge-L-F", names.rouge, tuple(regeneration_tasks()), "texts")),
    ]


def figure_score_vs_bits(rows: Rows, names: MetricNames) -> Figure | None:
    """Mean QA F1 and mean Rouge-L-F against the compressed form's bits per original token,
    with the lossless floor (llmzip on the same texts) as a dashed line per base model."""
    drawn = [(t, y, c, s) for t, y, c in _bits_panels(names) if (s := bits_series(rows, c))]
    if not drawn:
        return None
    width, height = PANEL_SIZE
    fig, axes = plt.subplots(1, len(drawn), figsize=(width * len(drawn) + LEGEND_INCHES, height),
                             squeeze=False, layout="constrained")
    legend: dict[tuple[str, str], Series] = {}
    for ax, (title, ylabel, column, series) in zip(axes[0], drawn, strict=True):
        draw_all(ax, series)
        for item in series:
            legend.setdefault((item.group, item.label), item)
        for floor in bits_floors(rows, column.tasks).values():
            ax.axvline(floor, color="0.35", linestyle="--", linewidth=1.0)
        ax.set_xscale("log")
        ax.set_xlabel("bits per original token (dashed: lossless floor)")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
    add_legend(fig, list(legend.values()))
    return fig


def score_vs_bits(rows: Rows, names: MetricNames) -> Plot | None:
    """The score-vs-bits plot, rendered."""
    fig = figure_score_vs_bits(rows, names)
    if fig is None:
        return None
    column = _bits_panels(names)[0][2]
    floors = "; ".join(f"{model}: {value:.3g}"
                       for model, value in bits_floors(rows, column.tasks).items())
    alt = ("QA mean F1 by bits per original token: "
           + _alt(bits_series(rows, column), " bits/token")
           + (f". Lossless floor (llmzip): {floors}" if floors else ""))
    return Plot("score_vs_bits", "Score vs bits per original token (dashed: the lossless floor)",
                alt, render(fig))


def all_plots(rows: Rows, names: MetricNames) -> list[Plot]:
    """Every plot the data allows."""
    plots = (score_vs_compression(rows, names), score_vs_length(rows, names),
             score_vs_bits(rows, names))
    return [p for p in plots if p]


def plot_notes(rows: Rows) -> list[str]:
    """Why a plot is missing, where the data explains it."""
    lengths = lengths_present(rows)
    if len(lengths) == 1:
        return [f"No score-vs-length plot: the runs hold one regeneration length "
                f"({lengths[0]} tokens); run two or more compressed_regeneration_* tasks."]
    return []
