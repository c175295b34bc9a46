"""The page's plots, as base64 PNG: per benchmark, score against compression and against bits
per byte (one narrow panel each, for the page's switch, and the legend of each axis apart),
and regeneration against context length. Rows whose scores are all zero (smoke tests) are
left out of every plot."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from leaderboard._metrics import MetricNames
from leaderboard._plots import (
    VIEWS,
    Panel,
    View,
    byte_panels,
    figure_by_panel,
    figure_legend,
    figure_score_vs_length,
    legend_alt,
    legend_pixels,
    length_series,
    lengths_present,
    panel_alt,
    qa_mean_panel,
    render,
    series_alt,
)
from leaderboard._runs import RowKey
from leaderboard._tables import ALL_ZERO, Rows, row_remarks


@dataclass(frozen=True)
class Plot:
    """A rendered figure: its name (the page's element id), title, alt text and PNG bytes in
    base64; the x axis (``view``) and benchmark panel (``benchmark``) of a switchable plot,
    and the size of its legend type in pixels of the PNG."""

    name: str
    title: str
    alt: str
    png_base64: str
    view: str = ""
    benchmark: str = ""
    legend_px: float = 0.0


def plotted_rows(rows: Rows) -> tuple[Rows, list[RowKey]]:
    """The rows to plot, and the smoke-test rows (every score 0) that are left out."""
    smoke = [key for key, tasks in rows.items() if ALL_ZERO in row_remarks(tasks)]
    return {key: tasks for key, tasks in rows.items() if key not in smoke}, smoke


def page_panels(rows: Rows, names: MetricNames) -> list[Panel]:
    """The mean over the QA benchmarks (when rows ran two or more), then every declared
    benchmark that a row ran."""
    ran = {task for tasks in rows.values() for task in tasks}
    panels = [panel for panel in byte_panels(names) if set(panel.column.tasks) & ran]
    qa = [task for panel in panels for task in panel.column.tasks
          if panel.column.key == names.f1]
    return ([qa_mean_panel(names, qa)] if len(qa) > 1 else []) + panels


def _panel_plot(rows: Rows, view: View, panel: Panel) -> Plot | None:
    fig = figure_by_panel(rows, view, [panel], narrow=True, legend=False)
    if fig is None:
        return None
    return Plot(f"{view.name}-{panel.name}", f"{panel.title}: score vs {view.title}",
                panel_alt(rows, view, panel), render(fig), view.name, panel.name)


def _legend_plot(rows: Rows, view: View, panels: Sequence[Panel]) -> Plot | None:
    fig = figure_legend(rows, view, panels)
    if fig is None:
        return None
    pixels = legend_pixels(fig)
    return Plot(f"legend-{view.name}", f"Legend: score vs {view.title}",
                legend_alt(rows, view, panels), render(fig), view.name, legend_px=pixels)


def page_plots(rows: Rows, names: MetricNames) -> tuple[list[Plot], list[Plot]]:
    """Per x axis and benchmark panel, the narrow plot of the rows that are not smoke tests,
    without its legend; and per x axis, the legend of its panels."""
    plotted, _smoke = plotted_rows(rows)
    panels = page_panels(plotted, names)
    found = [_panel_plot(plotted, view, panel) for view in VIEWS for panel in panels]
    legends = [_legend_plot(plotted, view, panels) for view in VIEWS]
    return ([plot for plot in found if plot is not None],
            [plot for plot in legends if plot is not None])


def length_plot(rows: Rows, names: MetricNames) -> Plot | None:
    """Regeneration against context length (narrow), when the rows ran two or more lengths."""
    plotted, _smoke = plotted_rows(rows)
    fig = figure_score_vs_length(plotted, names, narrow=True)
    if fig is None:
        return None
    pixels = legend_pixels(fig)
    alt = "Rouge-L-F by context length: " + series_alt(length_series(plotted, names), " tokens")
    return Plot("score_vs_length", "Regeneration vs context length", alt, render(fig),
                legend_px=pixels)


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
