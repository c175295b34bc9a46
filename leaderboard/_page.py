"""What ``index.html`` shows, in reading order: per benchmark the score against compression and
against bits per byte (one switchable plot), the summary table, the exported tables, more
plots, the samples and a footer naming when, with what and on what the runs were made; with
filters by compressor family, target model and benchmark, which act on the tables' rows and
columns and on the plots' series (through the owners of their filter tokens).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from bench import specs
from leaderboard._environment import Footer, footer
from leaderboard._families import FAMILY_MARKERS, FAMILY_ORDER, FAMILY_TITLES, curve_keys, family
from leaderboard._metrics import MetricNames, task_benchmarks
from leaderboard._page_plots import (
    MARKER_GLYPHS,
    Legend,
    Plot,
    filter_owners,
    filter_tags,
    length_plot,
    page_panels,
    page_plots,
    plot_notes,
    plotted_rows,
    smoke_note,
)
from leaderboard._plots import VIEWS, colours
from leaderboard._runs import RowKey, Run
from leaderboard._summary import summary_table
from leaderboard._tables import Cell, Rows, Table

NOT_PLOTTED = "#999999"


@dataclass(frozen=True)
class Choice:
    """One option of a filter or switch: its value and what it is called."""

    value: str
    title: str
    enabled: bool = True


@dataclass(frozen=True)
class Mark:
    """A row's marker in the plots: its family's glyph and its method's colour."""

    glyph: str
    colour: str
    title: str


@dataclass(frozen=True)
class RowView:
    """A table row with what the filters read: its family and target model."""

    cells: list[Cell]
    family: str
    model: str
    mark: Mark | None = None


@dataclass(frozen=True)
class TableView:
    """A table as the page shows it: per column its title and benchmark ("" for none)."""

    table: Table
    columns: list[tuple[str, str]]
    rows: list[RowView]


@dataclass(frozen=True)
class Page:
    """Everything the template renders."""

    title: str
    summary: TableView
    tables: list[TableView]
    plots: list[Plot]
    legends: list[Legend]
    views: list[Choice]
    panels: list[Choice]
    more_plots: list[Plot]
    plot_notes: list[str]
    families: list[Choice]
    models: list[str]
    benchmarks: list[Choice]
    series: dict[str, dict[str, str]]
    samples: list[dict[str, Any]]
    sample_limit: int
    run_count: int
    versions: dict[str, str]
    footer: Footer


def marks(rows: Rows) -> dict[RowKey, Mark]:
    """Per row the marker the plots draw its method with (grey for rows not plotted)."""
    plotted, _smoke = plotted_rows(rows)
    curves = curve_keys(plotted)
    palette = colours(curves.values())
    found = {}
    for key in rows:
        glyph = MARKER_GLYPHS[FAMILY_MARKERS[family(key)]]
        title = FAMILY_TITLES[family(key)]
        if key in curves:
            found[key] = Mark(glyph, palette[curves[key]], title)
        else:
            found[key] = Mark(glyph, NOT_PLOTTED, f"{title}; not plotted")
    return found


def table_view(table: Table, row_marks: Mapping[RowKey, Mark] | None = None) -> TableView:
    """The table with its rows' families and models and its columns' benchmarks."""
    columns = [(title, table.benchmarks.get(title, "")) for title in table.columns]
    rows = [RowView(cells, family(key), key.model_label,
                    None if row_marks is None else row_marks.get(key))
            for cells, key in zip(table.rows, table.keys, strict=True)]
    return TableView(table, columns, rows)


def filter_choices(rows: Rows) -> tuple[list[Choice], list[str], list[Choice]]:
    """The families, target models and benchmarks present, in the order the page lists them."""
    present = {family(key) for key in rows}
    families = [Choice(name, FAMILY_TITLES[name]) for name in FAMILY_ORDER if name in present]
    models = sorted({key.model_label for key in rows})
    owners = task_benchmarks()
    ran = {owners[task] for tasks in rows.values() for task in tasks if task in owners}
    benchmarks = [Choice(spec.name, spec.title) for spec in specs.benchmarks() if spec.name in ran]
    return families, models, benchmarks


def make_page(title: str, runs: Sequence[Run], rows: Rows, names: MetricNames,
              tables: Sequence[Table], baseline: str, samples: list[dict[str, Any]],
              sample_limit: int) -> Page:
    """The page of ``rows`` (read from ``runs``) with the exported ``tables``; the summary's
    retention is relative to each base model's ``baseline`` row."""
    summary = summary_table(rows, names, baseline)
    tags = filter_tags(rows)
    plots, legends = page_plots(rows, names, tags)
    views = [Choice(view.name, view.title, any(p.view == view.name for p in plots))
             for view in VIEWS]
    plotted, _smoke = plotted_rows(rows)
    families, models, benchmarks = filter_choices(rows)
    versions = {task: result.version for run in runs for task, result in run.tasks.items()}
    if note := smoke_note(rows):
        summary.notes.append(note)
    return Page(
        title=title,
        summary=table_view(summary, marks(rows)),
        tables=[table_view(table) for table in tables],
        plots=plots,
        legends=legends,
        views=views,
        panels=[Choice(panel.name, "QA (mean F1)" if panel.name == "qa" else panel.title)
                for panel in page_panels(plotted, names)],
        more_plots=[plot for plot in (length_plot(rows, names, tags),) if plot is not None],
        plot_notes=plot_notes(rows),
        families=families,
        models=models,
        benchmarks=benchmarks,
        series={token: asdict(owner) for token, owner in filter_owners(tags).items()},
        samples=samples,
        sample_limit=sample_limit,
        run_count=len(runs),
        versions=dict(sorted(versions.items())),
        footer=footer((run.key.model_label, run.environment) for run in runs),
    )
