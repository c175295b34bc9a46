"""The page's plots carry the filter token of every series and reference line they draw, and
the page's map from token to family and target model covers them all."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.collections import LineCollection
from matplotlib.lines import Line2D

from leaderboard import read_runs
from leaderboard._families import FAMILY_MARKERS, curve_keys, family
from leaderboard._metrics import metric_style, regeneration_tasks
from leaderboard._page_plots import (
    Legend,
    Owner,
    Plot,
    filter_owners,
    filter_tags,
    length_plot,
    page_panels,
    page_plots,
    plotted_rows,
)
from leaderboard._plots import VIEWS, Tags, figure_by_panel, references
from leaderboard._runs import merge_runs
from leaderboard._tables import Rows
from tests.leaderboard._page_runs import write_page_runs
from tests.leaderboard.conftest import FIXTURE_RUNS

NAMES = metric_style("squad")


@pytest.fixture(scope="module")
def rows(tmp_path_factory: pytest.TempPathFactory) -> Rows:
    """The committed runs and a second model's: every family, sizes in bits, a smoke row."""
    more = write_page_runs(tmp_path_factory.mktemp("runs"))
    return merge_runs(read_runs([FIXTURE_RUNS, more], with_samples=False))


@pytest.fixture(scope="module")
def tags(rows: Rows) -> Tags:
    return filter_tags(rows)


@pytest.fixture(scope="module")
def shown(rows: Rows, tags: Tags) -> tuple[list[Plot], list[Legend], Plot]:
    """The switchable plots, their legends and the length plot of the page."""
    plots, legends = page_plots(rows, NAMES, tags)
    length = length_plot(rows, NAMES, tags)
    assert length is not None and length.legend is not None
    return plots, [*legends, length.legend], length


def _drawn(svg: str) -> set[str]:
    return {group.attrib["data-series"] for group in ET.fromstring(svg).iter("g")
            if "data-series" in group.attrib}


def test_every_artist_of_a_series_carries_its_token(rows: Rows, tags: Tags) -> None:
    plotted, _smoke = plotted_rows(rows)
    checked = 0
    for view in VIEWS:
        for panel in page_panels(plotted, NAMES):
            fig = figure_by_panel(plotted, view, [panel], narrow=True, legend=False, tags=tags)
            if fig is None:
                continue
            series = view.series(plotted, panel.column)
            lines = references(plotted, view, panel, series)
            (ax,) = fig.axes
            artists = [*ax.lines, *ax.collections]
            for model in {*lines.floors, *lines.full}:
                assert [a for a in artists if a.get_gid() == tags.of_model(model)], model
            for item in series:
                mine = [a for a in artists if a.get_gid() == tags.of_series(item)]
                data = [a for a in mine if isinstance(a, Line2D)
                        and a.get_marker() == FAMILY_MARKERS[item.family]]
                assert len(data) == 1 and sorted(np.asarray(data[0].get_xdata())) == sorted(
                    x for x, _y, _e in item.points), item.label
                bars = [a for a in mine if isinstance(a, LineCollection)]
                caps = [a for a in mine if isinstance(a, Line2D) and a.get_marker() == "_"]
                assert len(bars) == 1 and len(caps) == 2 and len(mine) == 4, item.label
                checked += 1
            tagged = {tags.of_series(item) for item in series} | {
                tags.of_model(model) for model in {*lines.floors, *lines.full}}
            assert {a.get_gid() for a in artists} == tagged  # nothing drawn untagged
            plt.close(fig)
    assert checked


def test_every_plotted_row_is_drawn_under_its_token(
        rows: Rows, tags: Tags, shown: tuple[list[Plot], list[Legend], Plot]) -> None:
    plotted, smoke = plotted_rows(rows)
    assert smoke and not set(smoke) & set(tags.series)
    plots, legends, length = shown
    views = {view.name: view for view in VIEWS}
    panels = {panel.name: panel for panel in page_panels(plotted, NAMES)}
    seen: set[str] = set()
    for plot in plots:
        view, panel = views[plot.view], panels[plot.benchmark]
        series = view.series(plotted, panel.column)
        lines = references(plotted, view, panel, series)
        expected = ({tags.series[item.key] for item in series if item.key is not None}
                    | {tags.models[model] for model in {*lines.floors, *lines.full}})
        assert _drawn(plot.svg) == expected, plot.name
        seen |= expected
    curves = curve_keys(plotted)
    assert {tags.series[curves[key]] for key in plotted} <= seen
    ran = {tags.series[key] for key, tasks in plotted.items() if set(tasks) & set(
        regeneration_tasks())}
    assert ran and {token for token in _drawn(length.svg) if token[0] != "m"} == ran
    for legend in legends:
        listed = {item.token for item in legend.items if item.kind == "series"}
        assert listed <= seen | ran and len(listed) > 1, legend.name


def test_the_token_map_names_the_family_and_model_of_every_token(
        rows: Rows, tags: Tags, shown: tuple[list[Plot], list[Legend], Plot]) -> None:
    owners = filter_owners(tags)
    plotted, _smoke = plotted_rows(rows)
    assert len(set(tags.series.values())) == len(tags.series)  # one token per row or curve
    for key, token in tags.series.items():
        assert owners[token] == Owner(family(key), key.model_label), token
    for model, token in tags.models.items():
        assert owners[token] == Owner("", model)
    assert set(owners) == {*tags.series.values(), *tags.models.values()}
    assert {owner.family for owner in owners.values()} == {family(key) for key in plotted} | {""}
    plots, legends, length = shown
    drawn = {token for plot in [*plots, length] for token in _drawn(plot.svg)}
    listed = {item.token for legend in legends for item in legend.items if item.token}
    assert drawn | listed <= set(owners)


def test_tokens_follow_the_rows_not_the_order_they_were_read_in(rows: Rows) -> None:
    backwards = dict(reversed(list(rows.items())))
    assert list(backwards) != list(rows) and filter_tags(backwards) == filter_tags(rows)
