"""The page's plots, as inline SVG: per benchmark, score against compression and against bits
per byte (one narrow panel each, for the page's switch, with one HTML legend per axis), and
regeneration against context length. Every series, and every base model's reference lines,
carry a token that the page maps to a family and target model (:func:`filter_owners`), so
that the filters hide them with the rows. Rows whose scores are all zero (smoke tests) are
left out of every plot."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from markupsafe import Markup
from matplotlib.colors import to_hex

from leaderboard._families import FAMILY_MARKERS, curve_keys, family
from leaderboard._metrics import MetricNames, regeneration_tasks, task_benchmarks
from leaderboard._plots import (
    VIEWS,
    LegendRow,
    Line,
    Panel,
    Series,
    Tags,
    View,
    byte_panels,
    drawing,
    figure_by_panel,
    figure_score_vs_length,
    legend_rows,
    length_series,
    lengths_present,
    panel_alt,
    plot_order,
    qa_mean_panel,
    series_alt,
)
from leaderboard._runs import RowKey
from leaderboard._svg import inline_svg
from leaderboard._tables import ALL_ZERO, Rows, row_remarks

# The family markers of the plots as characters, for the legends and the summary table.
MARKER_GLYPHS = {"s": "\u25a0", "P": "\u271a", "o": "\u25cf", "^": "\u25b2", "v": "\u25bc",
                 "D": "\u25c6", "X": "\u2716"}
STROKES = {"-": "solid", "--": "dashed", ":": "dotted"}
FAMILY_KEY_COLOUR = to_hex("grey")


@dataclass(frozen=True)
class LegendItem:
    """One entry of a page legend: its ``kind`` (``header``, ``series``, ``family`` or
    ``line``) and text, the filter token of its series (of a header: of its base model), its
    family, and the colour, marker glyph and stroke (``solid``, ``dashed``, ``dotted``, or
    "" for none) it is drawn with."""

    kind: str
    text: str
    token: str = ""
    family: str = ""
    colour: str = ""
    glyph: str = ""
    stroke: str = ""


@dataclass(frozen=True)
class Legend:
    """The legend of one x axis (``view``) or plot, as the page lists it."""

    name: str
    title: str
    items: list[LegendItem]
    view: str = ""


@dataclass(frozen=True)
class Plot:
    """A rendered figure: its name (the page's element id), title, alt text and ``<svg>``
    element; the x axis (``view``) and benchmark of a switchable plot, or the benchmark a
    plot belongs to, and a legend of its own."""

    name: str
    title: str
    alt: str
    svg: Markup
    view: str = ""
    benchmark: str = ""
    legend: Legend | None = None


@dataclass(frozen=True)
class Owner:
    """What a filter token's artists belong to: a family ("" for a base model's reference
    lines) and a target model."""

    family: str
    model: str


def plotted_rows(rows: Rows) -> tuple[Rows, list[RowKey]]:
    """The rows to plot, and the smoke-test rows (every score 0) that are left out."""
    smoke = [key for key, tasks in rows.items() if ALL_ZERO in row_remarks(tasks)]
    return {key: tasks for key, tasks in rows.items() if key not in smoke}, smoke


def _sorted(keys: Iterable[RowKey]) -> list[RowKey]:
    return sorted(set(keys), key=lambda key: (plot_order(key), repr(key)))


def filter_tags(rows: Rows) -> Tags:
    """The tokens of the plotted rows' curves (``c0``, ``c1``, ...: the lines against
    compression), of the rows themselves (``r0``, ...: against context length) and of their
    base models (``m0``, ...: reference lines)."""
    plotted, _smoke = plotted_rows(rows)
    series = {key: f"c{i}" for i, key in enumerate(_sorted(curve_keys(plotted).values()))}
    for i, key in enumerate(_sorted(plotted)):
        series.setdefault(key, f"r{i}")  # a row without budget settings is its own curve
    models = sorted({key.model_label for key in plotted})
    return Tags(series, {label: f"m{i}" for i, label in enumerate(models)})


def filter_owners(tags: Tags) -> dict[str, Owner]:
    """Per token of ``tags``, the family and target model the filters read."""
    owners = {token: Owner(family(key), key.model_label) for key, token in tags.series.items()}
    owners.update({token: Owner("", label) for label, token in tags.models.items()})
    return owners


def page_panels(rows: Rows, names: MetricNames) -> list[Panel]:
    """The mean over the QA benchmarks (when rows ran two or more), then every declared
    benchmark that a row ran."""
    ran = {task for tasks in rows.values() for task in tasks}
    panels = [panel for panel in byte_panels(names) if set(panel.column.tasks) & ran]
    qa = [task for panel in panels for task in panel.column.tasks
          if panel.column.key == names.f1]
    return ([qa_mean_panel(names, qa)] if len(qa) > 1 else []) + panels


def _legend_item(row: LegendRow, tags: Tags) -> LegendItem:
    if row.series is not None:
        item = row.series
        token = "" if item.key is None else tags.series.get(item.key, "")
        return LegendItem("series", row.text, token, item.family, item.colour,
                          MARKER_GLYPHS[FAMILY_MARKERS[item.family]],
                          "solid" if len(item.points) > 1 else "")
    if row.kind == "family":
        return LegendItem("family", row.text, family=row.family, colour=FAMILY_KEY_COLOUR,
                          glyph=MARKER_GLYPHS[FAMILY_MARKERS[row.family]])
    if row.style is not None:
        return LegendItem("line", row.text, colour=to_hex(row.style["color"]),
                          stroke=STROKES[row.style["linestyle"]])
    return LegendItem("header", row.text, tags.models.get(row.group, ""))


def page_legend(name: str, title: str, series: Sequence[Series], lines: Sequence[Line],
                tags: Tags, view: str = "") -> Legend:
    """The legend of ``series`` and reference ``lines`` (as a figure's legend orders it)."""
    return Legend(name, title, [_legend_item(row, tags) for row in legend_rows(series, lines)],
                  view)


def _panel_plot(rows: Rows, view: View, panel: Panel, tags: Tags) -> Plot | None:
    fig = figure_by_panel(rows, view, [panel], narrow=True, legend=False, tags=tags)
    if fig is None:
        return None
    name, alt = f"{view.name}-{panel.name}", panel_alt(rows, view, panel)
    return Plot(name, f"{panel.title}: score vs {view.title}", alt, inline_svg(fig, name, alt),
                view.name, panel.name)


def _view_legend(rows: Rows, view: View, panels: Sequence[Panel], tags: Tags) -> Legend | None:
    parts = drawing(rows, view, panels)
    if parts is None:
        return None
    return page_legend(f"legend-{view.name}", f"Legend: score vs {view.title}", parts.legend,
                       parts.lines, tags, view.name)


def page_plots(rows: Rows, names: MetricNames, tags: Tags | None = None
               ) -> tuple[list[Plot], list[Legend]]:
    """Per x axis and benchmark panel, the narrow plot of the rows that are not smoke tests,
    without its legend; and per x axis, the legend of its panels."""
    plotted, _smoke = plotted_rows(rows)
    tags = filter_tags(rows) if tags is None else tags
    panels = page_panels(plotted, names)
    found = [_panel_plot(plotted, view, panel, tags) for view in VIEWS for panel in panels]
    legends = [_view_legend(plotted, view, panels, tags) for view in VIEWS]
    return ([plot for plot in found if plot is not None],
            [legend for legend in legends if legend is not None])


def _length_benchmark(rows: Rows) -> str:
    """The one benchmark whose lengths the rows ran ("" when they ran several)."""
    owners = task_benchmarks()
    ran = {owners[task] for tasks in rows.values() for task in tasks
           if task in regeneration_tasks() and task in owners}
    return next(iter(ran)) if len(ran) == 1 else ""


def length_plot(rows: Rows, names: MetricNames, tags: Tags | None = None) -> Plot | None:
    """Regeneration against context length (narrow, its legend apart), when the rows ran two
    or more lengths."""
    plotted, _smoke = plotted_rows(rows)
    tags = filter_tags(rows) if tags is None else tags
    fig = figure_score_vs_length(plotted, names, narrow=True, legend=False, tags=tags)
    if fig is None:
        return None
    series = length_series(plotted, names)
    alt = "Rouge-L-F by context length: " + series_alt(series, " tokens")
    legend = page_legend("legend-score_vs_length", "Legend: regeneration vs context length",
                         series, (), tags)
    return Plot("score_vs_length", "Regeneration vs context length", alt,
                inline_svg(fig, "score_vs_length", alt), benchmark=_length_benchmark(plotted),
                legend=legend)


def smoke_note(rows: Rows) -> str | None:
    """The note naming the rows listed in the tables but left out of the plots."""
    _plotted, smoke = plotted_rows(rows)
    if not smoke:
        return None
    listed = "; ".join(f"{key.model_label} / {key.title}" for key in smoke)
    return f"Listed, not plotted ('{ALL_ZERO}'): {listed}."


def plot_notes(rows: Rows) -> list[str]:
    """Why a plot is missing, where the data explains it."""
    notes = []
    lengths = lengths_present(rows)
    if len(lengths) == 1:
        notes.append(f"No score-vs-length plot: the runs hold one regeneration length "
                     f"({lengths[0]} tokens); run two or more compressed_regeneration_* tasks.")
    return notes
