"""Figures of score vs compression, vs bits per byte and vs context length (matplotlib, Agg).

A figure has one panel per benchmark (or benchmark group) it is asked for, one series per
method (rows that differ only in their budget lie on one line), error bars of one standard
error, the full-context score as a dotted line and, against bits per byte, the lossless floor
as a dashed one. Its legend is grouped by base model and keyed by compressor family (one
marker per family): right of the panels, below the one panel of the narrow layout, or left to
the caller (the page writes it in HTML). Given :class:`Tags`, the artists of each series and
of each base model's reference lines carry an id (matplotlib's ``gid``) the page filters by.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.text import Text
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

from bench import specs
from leaderboard._baseline import UNCOMPRESSED, find_baseline
from leaderboard._bits import bits_per_byte, byte_floors
from leaderboard._columns import Column, score_column
from leaderboard._errors import LeaderboardError
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

DPI = 100  # pixels per inch of a figure shown on the page
PANEL_SIZE = (4.0, 3.3)  # inches per panel
LEGEND_INCHES = 2.7  # width of the legend column right of the panels
LEGEND_WIDTH = 34  # characters per legend line before wrapping
LEGEND_POINTS = 8
# The narrow layout: one panel 3.6 in (360 px, 380 with its margins) wide, so that a
# 420 px window shows it unscaled, and a legend below it in 9 pt type (12.5 px).
NARROW_SIZE = (3.6, 2.6)
NARROW_LEGEND_POINTS = 9
LEGEND_LINE_INCHES = 0.2  # height of one legend line at NARROW_LEGEND_POINTS
PANELS_PER_ROW = 2  # as wide as the two-panel compression plot: unscaled on a 1280 px page


@dataclass
class Series:
    """Points of one legend entry, ``(x, y, standard error of y)``, the base model (``group``)
    it belongs to and the row or curve it draws (``key``)."""

    label: str
    family: str
    group: str
    colour: str = "black"
    points: list[tuple[float, float, float | None]] = field(default_factory=list)
    key: RowKey | None = None


FILTER_GID = "cb-filter-{token}"  # the gid of a tagged artist; tokens are [a-z]+[0-9]+


@dataclass(frozen=True)
class Tags:
    """Tokens naming what a figure draws, for the page's filters: per row or curve (the
    ``key`` of a series) and per base model label (its reference lines)."""

    series: Mapping[RowKey, str] = field(default_factory=dict)
    models: Mapping[str, str] = field(default_factory=dict)

    def of_series(self, item: Series) -> str | None:
        """The gid of the artists of ``item`` (None: untagged)."""
        token = None if item.key is None else self.series.get(item.key)
        return None if token is None else FILTER_GID.format(token=token)

    def of_model(self, label: str) -> str | None:
        """The gid of the reference lines of base model ``label`` (None: untagged)."""
        token = self.models.get(label)
        return None if token is None else FILTER_GID.format(token=token)


UNTAGGED = Tags()


def legend_pixels(fig: Figure) -> float:
    """The smallest legend type of the figure in pixels at ``DPI``."""
    sizes = [float(text.get_fontsize()) for legend in fig.legends
             for text in legend.get_texts()]
    return min(sizes) * DPI / 72 if sizes else 0.0


def plot_order(key: RowKey) -> tuple[str, int, str]:
    """Where a row or curve comes in the plots' colours: by model, family and title."""
    return key.model_label, FAMILY_ORDER.index(family(key)), key.title


def colours(keys: Iterable[RowKey]) -> dict[RowKey, str]:
    """One colour per key (row or curve), the same in every panel of a figure."""
    ordered = sorted(set(keys), key=plot_order)
    cmap = plt.get_cmap("tab10" if len(ordered) <= 10 else "tab20")
    size = 10 if len(ordered) <= 10 else 20
    return {key: matplotlib.colors.to_hex(cmap(i % size)) for i, key in enumerate(ordered)}


def new_series(key: RowKey, colour: str) -> Series:
    """An empty series for a row or curve."""
    return Series(key.title, family(key), key.model_label, colour, key=key)


def _blank() -> Artist:
    return Line2D([], [], linestyle="none")


Line = tuple[Mapping[str, Any], str]  # a reference line: its style and what it shows


class LegendRow(NamedTuple):
    """One entry of a legend: a ``header`` (of a base model's entries when ``group`` names
    it), a ``series``, a compressor ``family`` of the marker key, or a reference ``line``
    (drawn in ``style``)."""

    kind: Literal["header", "series", "family", "line"]
    text: str
    series: Series | None = None
    group: str = ""
    family: str = ""
    style: Mapping[str, Any] | None = None


def legend_rows(series: Sequence[Series], lines: Sequence[Line] = ()) -> list[LegendRow]:
    """The entries under a header per base model (when there are several), then a key of the
    family markers and of the reference ``lines``."""
    ordered = sorted(series, key=lambda s: (s.group, FAMILY_ORDER.index(s.family), s.label))
    groups = list(dict.fromkeys(s.group for s in ordered))
    rows: list[LegendRow] = []
    for group in groups:
        if len(groups) > 1:
            rows.append(LegendRow("header", group, group=group))
        rows += [LegendRow("series", s.label, s) for s in ordered if s.group == group]
    rows.append(LegendRow("header", "marker: compressor family"))
    rows += [LegendRow("family", FAMILY_TITLES[name], family=name) for name in FAMILY_ORDER
             if any(s.family == name for s in ordered)]
    if lines:
        rows.append(LegendRow("header", "lines"))
    rows += [LegendRow("line", meaning, style=style) for style, meaning in lines]
    return rows


def _handle(row: LegendRow) -> Artist:
    if row.series is not None:
        return Line2D([], [], color=row.series.colour, marker=FAMILY_MARKERS[row.series.family],
                      linestyle="-" if len(row.series.points) > 1 else "none")
    if row.family:
        return Line2D([], [], color="grey", marker=FAMILY_MARKERS[row.family], linestyle="none")
    return _blank() if row.style is None else Line2D([], [], **row.style)


def legend_entries(series: Sequence[Series], lines: Sequence[Line] = ()
                   ) -> tuple[list[Artist], list[str], list[str]]:
    """Handles, labels and the headers among them of :func:`legend_rows`; long labels
    wrapped (but the family key's)."""
    rows = legend_rows(series, lines)
    labels = [row.text if row.kind == "family" else textwrap.fill(
        row.text, LEGEND_WIDTH, subsequent_indent="  " if row.kind == "series" else "")
              for row in rows]
    headers = [label for row, label in zip(rows, labels, strict=True) if row.kind == "header"]
    return [_handle(row) for row in rows], labels, headers


def legend_lines(series: Sequence[Series], lines: Sequence[Line] = ()) -> int:
    """How many lines of text the legend of ``series`` and ``lines`` has."""
    return sum(label.count("\n") + 1 for label in legend_entries(series, lines)[1])


LegendPlace = Literal["outside right center", "outside lower center"]
_LEGEND_PLACES: dict[str, LegendPlace] = {
    "right": "outside right center", "below": "outside lower center"}


def add_legend(fig: Figure, series: Sequence[Series], lines: Sequence[Line] = (),
               placement: str = "right") -> None:
    """The legend of :func:`legend_entries`: right of the axes, or ``below`` them in the
    narrow layout's type size."""
    handles, labels, headers = legend_entries(series, lines)
    loc: LegendPlace = _LEGEND_PLACES[placement]
    points = LEGEND_POINTS if placement == "right" else NARROW_LEGEND_POINTS
    legend = fig.legend(handles, labels, loc=loc, frameon=False, fontsize=points,
                        handlelength=1.8)
    for text in legend.get_texts():
        literal(text)
        if text.get_text() in headers:
            text.set_fontweight("bold")


def literal(text: Text) -> None:
    """Draw ``text`` as written: ``$``, ``_``, ``^`` in a name are not mathtext or TeX."""
    text.set_parse_math(False)
    text.set_usetex(False)


def draw(ax: Axes, item: Series, markersize: float = 6.0, gid: str | None = None) -> None:
    """Points (joined when there are several) with one-standard-error bars; every artist of
    them with the id ``gid``."""
    points = sorted(item.points)
    xs = [x for x, _y, _e in points]
    ys = [y for _x, y, _e in points]
    errors = [math.nan if e is None else e for _x, _y, e in points]
    drawn = ax.errorbar(xs, ys, yerr=errors, color=item.colour,
                        marker=FAMILY_MARKERS[item.family], markersize=markersize,
                        linestyle="-" if len(points) > 1 else "none", linewidth=1.2, capsize=2,
                        elinewidth=0.8)
    for artist in drawn.get_children():
        artist.set_gid(gid)


def draw_all(ax: Axes, series: Sequence[Series], tags: Tags = UNTAGGED) -> None:
    """Every series; a marker that later ones cover is drawn larger, so that rows with the
    same numbers (e.g. none and a stock lm-eval run) stay visible as nested markers."""
    places = [{(x, round(y, 6)) for x, y, _e in item.points} for item in series]
    for i, item in enumerate(series):
        covered_by = sum(1 for later in places[i + 1:] if later & places[i])
        draw(ax, item, markersize=6.0 + 3.0 * covered_by, gid=tags.of_series(item))


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


def figure_score_vs_length(rows: Rows, names: MetricNames, narrow: bool = False,
                           legend: bool = True, tags: Tags = UNTAGGED) -> Figure | None:
    """Rouge-L-F of regeneration per context length, over the lengths present (two or more),
    with (unless not ``legend``) the legend."""
    lengths = lengths_present(rows)
    series = length_series(rows, names)
    if len(lengths) < 2 or not series:
        return None
    fig, (ax,) = new_figure(1, narrow, legend_lines(series) if legend else 0)
    draw_all(ax, series, tags)
    ax.xaxis.set_major_locator(FixedLocator(lengths))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlim(lengths[0] - 0.08 * (lengths[-1] - lengths[0]),
                lengths[-1] + 0.08 * (lengths[-1] - lengths[0]))
    ax.set_xlabel("context length (target-model tokens)")
    ax.set_ylabel(f"Rouge-L-F ({names.rouge}, x100)")
    ax.set_title("Regeneration vs context length")
    ax.grid(True, alpha=0.3)
    if legend:
        add_legend(fig, series, placement="below" if narrow else "right")
    return fig


def series_alt(series: Sequence[Series], unit: str) -> str:
    return "; ".join(
        f"{item.group} / {item.label}: "
        + ", ".join(f"{x:g}{unit} {y:.1f}" for x, y, _e in sorted(item.points))
        for item in series
    )


@dataclass(frozen=True)
class Panel:
    """One panel: the score column it plots, its title and y-axis label, and its ``name``
    (the benchmark's, or ``qa`` for the mean over the QA benchmarks)."""

    title: str
    ylabel: str
    column: Column
    name: str = ""


def qa_mean_panel(names: MetricNames, tasks: Sequence[str] | None = None) -> Panel:
    """Mean F1 over the QA benchmarks (those of ``tasks``, or every declared one)."""
    chosen = tuple(qa_tasks()) if tasks is None else tuple(tasks)
    return Panel("QA", "mean F1 (x100)",
                 score_column("QA F1", names.f1, chosen, "questions"), "qa")


def regeneration_panel(names: MetricNames) -> Panel:
    """Mean Rouge-L-F over the regeneration lengths."""
    return Panel("Regeneration", "mean Rouge-L-F (x100)",
                 score_column("Rouge-L-F", names.rouge, tuple(regeneration_tasks()), "texts"),
                 "regeneration")


def byte_panels(names: MetricNames) -> list[Panel]:
    """One panel per declared benchmark: F1 of a QA benchmark, mean Rouge-L-F over the
    lengths of a regeneration benchmark."""
    panels = []
    for spec in specs.benchmarks():
        if spec.kind == "qa":
            column = score_column(f"{spec.title} F1", names.f1, (spec.task,), "questions")
            panels.append(Panel(spec.title, "F1 (x100)", column, spec.name))
        else:
            column = score_column(f"{spec.title} Rouge-L-F", names.rouge,
                                  tuple(spec.task_lengths()), "texts")
            panels.append(Panel(spec.title, "mean Rouge-L-F (x100)", column, spec.name))
    return panels


def byte_series(rows: Rows, column: Column) -> list[Series]:
    """One series per curve: (compressed bits per original byte on the column's tasks,
    score)."""
    curves = curve_keys(rows)
    palette = colours(curves.values())
    by_curve: dict[RowKey, Series] = {}
    for key, tasks in rows.items():
        x = bits_per_byte(tasks, column.tasks)
        y, error = score(tasks, column)
        if not x or y is None:
            continue
        curve = curves[key]
        item = by_curve.setdefault(curve, new_series(curve, palette[curve]))
        item.points.append((x, y, error))
    return list(by_curve.values())


def full_context_scores(rows: Rows, column: Column, labels: Iterable[str]) -> dict[str, float]:
    """Per base model (by its label, those in ``labels``), the score of its full-context row:
    ``none``, else its one stock lm-eval run (none when that is missing or ambiguous)."""
    wanted = set(labels)
    scores: dict[str, float] = {}
    for model in sorted({key.model for key in rows if key.model_label in wanted}):
        try:
            base = find_baseline(rows, model, UNCOMPRESSED, "the full-context line")
        except LeaderboardError:
            continue
        value, _error = score(rows[base.key], column)
        if value is not None:
            scores[base.key.model_label] = value
    return scores


def bits_axis(ax: Axes, values: Sequence[float]) -> None:
    """A log axis covering ``values`` with plain ticks: 1, 2, 5, 10, ... over two decades or
    less, else powers of ten."""
    low, high = min(values), max(values)
    steps = (1.0, 2.0, 5.0) if high / low <= 100 else (1.0,)
    exponents = range(math.floor(math.log10(low)) - 1, math.ceil(math.log10(high)) + 1)
    ladder = [step * 10.0**exponent for exponent in exponents for step in steps]
    first = max(t for t in ladder if t <= low * (1 + 1e-9))
    last = min(t for t in ladder if t >= high * (1 - 1e-9))
    ax.set_xscale("log")
    ax.set_xlim(first / 1.15, last * 1.15)
    ax.xaxis.set_major_locator(FixedLocator([t for t in ladder if first <= t <= last]))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _pos: f"{x:g}"))


FLOOR_STYLE: dict[str, Any] = {"color": "0.35", "linestyle": "--", "linewidth": 1.0}
FULL_CONTEXT_STYLE: dict[str, Any] = {"color": "0.35", "linestyle": ":", "linewidth": 1.2}
FLOOR_LINE: Line = (FLOOR_STYLE, "llmzip: lossless floor")
FULL_CONTEXT_LINE: Line = (FULL_CONTEXT_STYLE, "full context (none): score")


@dataclass(frozen=True)
class View:
    """What the x axis of a figure shows: how a row's x is read (``series``), how the axis is
    ticked, its label, the unit of the alt text, and whether the lossless floor is drawn."""

    name: str
    title: str
    xlabel: str
    unit: str
    series: Callable[[Rows, Column], list[Series]]
    axis: Callable[[Axes, Sequence[float]], None]
    floor: bool


RATE_VIEW = View("rate", "compression", "compression (original / compressed tokens)", "×",
                 compression_series, ratio_axis, floor=False)
BITS_VIEW = View("bits", "bits per byte", "bits per original byte", " bits/byte",
                 byte_series, bits_axis, floor=True)
VIEWS = (RATE_VIEW, BITS_VIEW)


@dataclass(frozen=True)
class References:
    """The reference lines of one panel: lossless floors (x) and full-context scores (y),
    per base model label."""

    floors: dict[str, float]
    full: dict[str, float]

    def lines(self) -> list[Line]:
        """The kinds of line drawn, for the legend."""
        return [line for line, drawn in ((FLOOR_LINE, self.floors), (FULL_CONTEXT_LINE, self.full))
                if drawn]


def references(rows: Rows, view: View, panel: Panel, series: Sequence[Series]) -> References:
    """The floors (where ``view`` draws them) and full-context scores of the base models
    that ``series`` show."""
    models = {item.group for item in series}
    floors = ({model: value for model, value in byte_floors(rows, panel.column.tasks).items()
               if model in models} if view.floor else {})
    return References(floors, full_context_scores(rows, panel.column, models))


def new_figure(panels: int, narrow: bool, legend_lines: int) -> tuple[Figure, list[Axes]]:
    """Axes for ``panels`` panels: two to a row with room for a legend on their right, or,
    ``narrow``, one to a row with room for a legend of ``legend_lines`` lines below."""
    if narrow:
        width, height = NARROW_SIZE
        columns, size = 1, (width, height * panels + legend_lines * LEGEND_LINE_INCHES)
    else:
        width, height = PANEL_SIZE
        columns = min(panels, PANELS_PER_ROW)
        size = (width * columns + LEGEND_INCHES, height * math.ceil(panels / columns))
    fig, axes = plt.subplots(math.ceil(panels / columns), columns, squeeze=False,
                             layout="constrained", figsize=size)
    grid = [ax for row in axes for ax in row]
    for unused in grid[panels:]:
        fig.delaxes(unused)
    return fig, grid[:panels]


def _draw_panel(ax: Axes, view: View, panel: Panel, series: Sequence[Series],
                lines: References, tags: Tags) -> None:
    draw_all(ax, series, tags)
    for model, floor in lines.floors.items():
        ax.axvline(floor, **FLOOR_STYLE).set_gid(tags.of_model(model))
    for model, full in lines.full.items():
        ax.axhline(full, **FULL_CONTEXT_STYLE).set_gid(tags.of_model(model))
    view.axis(ax, [x for item in series for x, _y, _e in item.points]
              + list(lines.floors.values()))
    ax.set_xlabel(view.xlabel)
    ax.set_ylabel(panel.ylabel)
    ax.set_title(panel.title)
    ax.grid(True, alpha=0.3)


@dataclass(frozen=True)
class Drawing:
    """What a figure of one view draws: per panel with data its series and reference lines,
    and the legend's entries (every series once) and kinds of line."""

    panels: list[tuple[Panel, list[Series], References]]
    legend: list[Series]
    lines: list[Line]


def drawing(rows: Rows, view: View, panels: Sequence[Panel]) -> Drawing | None:
    """The drawing of the ``panels`` that have data against the x of ``view`` (None: none
    has)."""
    drawn = [(p, s, references(rows, view, p, s)) for p in panels
             if (s := view.series(rows, p.column))]
    if not drawn:
        return None
    legend: dict[tuple[str, str], Series] = {}
    for _panel, series, _lines in drawn:
        for item in series:
            legend.setdefault((item.group, item.label), item)
    kinds = [line for line in (FLOOR_LINE, FULL_CONTEXT_LINE)
             if any(line in lines.lines() for _p, _s, lines in drawn)]
    return Drawing(drawn, list(legend.values()), kinds)


def figure_by_panel(rows: Rows, view: View, panels: Sequence[Panel], narrow: bool = False,
                    legend: bool = True, tags: Tags = UNTAGGED) -> Figure | None:
    """The score of each of ``panels`` that has data against the x of ``view``, every
    family on one axis, with the reference lines and (unless not ``legend``) the legend;
    None when no panel has data."""
    parts = drawing(rows, view, panels)
    if parts is None:
        return None
    room = legend_lines(parts.legend, parts.lines) if legend else 0
    fig, axes = new_figure(len(parts.panels), narrow, room)
    for ax, (panel, series, lines) in zip(axes, parts.panels, strict=True):
        _draw_panel(ax, view, panel, series, lines, tags)
    if legend:
        add_legend(fig, parts.legend, parts.lines, placement="below" if narrow else "right")
    return fig


def figure_score_vs_compression(rows: Rows, names: MetricNames,
                                panels: Sequence[Panel] | None = None, narrow: bool = False
                                ) -> Figure | None:
    """The score of each panel (default: mean QA F1 and mean Rouge-L-F) against the achieved
    compression (original / compressed tokens), with the full-context score."""
    chosen = [qa_mean_panel(names), regeneration_panel(names)] if panels is None else panels
    return figure_by_panel(rows, RATE_VIEW, chosen, narrow)


def figure_score_vs_bits_per_byte(rows: Rows, names: MetricNames,
                                  panels: Sequence[Panel] | None = None, narrow: bool = False
                                  ) -> Figure | None:
    """The score of each panel (default: one per declared benchmark) against the compressed
    form's bits per original byte, with the lossless floor (llmzip on the same texts) dashed
    and the full-context score dotted, per base model."""
    chosen = byte_panels(names) if panels is None else panels
    return figure_by_panel(rows, BITS_VIEW, chosen, narrow)


def panel_alt(rows: Rows, view: View, panel: Panel) -> str:
    """The data of one panel in words, for its image's alt text."""
    series = view.series(rows, panel.column)
    lines = references(rows, view, panel, series)
    floors = "; ".join(f"{model}: {value:.3g}" for model, value in lines.floors.items())
    full = "; ".join(f"{model}: {value:.1f}" for model, value in lines.full.items())
    return (f"{panel.title} ({panel.ylabel}) by {view.title}: " + series_alt(series, view.unit)
            + (f". Lossless floor (llmzip): {floors}" if floors else "")
            + (f". Full context: {full}" if full else ""))

