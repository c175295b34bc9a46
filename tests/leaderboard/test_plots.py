"""The plots as a paper would show them: no overlapping or clipped text, a legend off the
data, plain ratio ticks, one marker per compressor family, lengths as they were run."""

from __future__ import annotations

import itertools
import math
import re
from pathlib import Path
from typing import Any

import matplotlib.mathtext
import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.text import Text

from bench import specs
from bench.harness.answering import model_info
from bench.results_record import CompressorRecord, RunInfo
from leaderboard import read_runs
from leaderboard._families import FAMILY_MARKERS, family
from leaderboard._metrics import metric_style, regeneration_tasks
from leaderboard._page_plots import plot_notes
from leaderboard._plots import (
    DPI,
    byte_panels,
    figure_score_vs_bits_per_byte,
    figure_score_vs_compression,
    figure_score_vs_length,
    legend_pixels,
)
from leaderboard._runs import merge_runs
from leaderboard._svg import inline_svg
from leaderboard._tables import Rows, efficiency_values
from tests.leaderboard._lmeval_files import write_results
from tests.leaderboard.conftest import FIXTURE_RUNS

NAMES = metric_style("squad")
NARROW_PAGE_PX = 420 - 2 * 10  # a 420 px window less the page's margins


@pytest.fixture(scope="module")
def rows() -> Rows:
    return merge_runs(read_runs([FIXTURE_RUNS], with_samples=False))


def _sized(score: float, bits_per_byte: float) -> dict[str, dict[str, float]]:
    """Every declared task scored ``score``, 1000 bytes compressed to ``bits_per_byte``."""
    size = {"compressed_bits": 1000.0 * bits_per_byte, "original_bytes": 1000.0,
            "original_tokens": 250.0}
    return {task: {metric: score, **size}
            for spec in specs.benchmarks()
            for metric in (("squad_f1",) if spec.kind == "qa" else ("rouge_l_f",))
            for task in spec.task_lengths()}


@pytest.fixture(scope="module")
def sized_rows(tmp_path_factory: pytest.TempPathFactory) -> Rows:
    """Every family on every benchmark, with bits and bytes, on two base models."""
    root = tmp_path_factory.mktemp("sized")
    for model in ("org/model-a", "org/model-b"):
        for args, score, bits in (("none", 0.6, 2.3), ("llmzip", 0.6, 2.1),
                                  ("truncate,rate=0.5", 0.4, 1.1),
                                  ("truncate,rate=0.25", 0.3, 0.55),
                                  ("500x,num_mem=4", 0.35, 900.0), ("icae", 0.3, 120.0)):
            write_results(root / model / args, f"pretrained={model},compressor={args}",
                          _sized(score, bits))
        for rate in (0.25, 0.5):
            record = CompressorRecord("a_press", "1", {"rate": rate}, family="KV-eviction",
                                      question_aware=False, budget_options=("rate",))
            write_results(root / model / f"press-{rate}", f"pretrained={model}",
                          _sized(rate, 3000.0 * rate), extra_config=model_info(RunInfo(record)))
    return merge_runs(read_runs([root], with_samples=False))


def _narrow_figures(rows: Rows, sized_rows: Rows) -> list[Figure]:
    """One panel with its legend below."""
    squad = [panel for panel in byte_panels(NAMES) if panel.name == "squad"]
    figures = [figure_score_vs_compression(rows, NAMES, squad, narrow=True),
               figure_score_vs_bits_per_byte(sized_rows, NAMES, squad, narrow=True),
               figure_score_vs_length(rows, NAMES, narrow=True)]
    assert all(fig is not None for fig in figures)
    return [fig for fig in figures if fig is not None]


def _figures(rows: Rows, sized_rows: Rows) -> list[Figure]:
    figures = [figure_score_vs_compression(rows, NAMES), figure_score_vs_length(rows, NAMES),
               figure_score_vs_bits_per_byte(sized_rows, NAMES)]
    assert all(fig is not None for fig in figures)
    return [fig for fig in figures if fig is not None] + _narrow_figures(rows, sized_rows)


def test_narrow_figures_fit_a_420_px_window_unscaled_with_legible_legends(
        rows: Rows, sized_rows: Rows) -> None:
    for fig in _narrow_figures(rows, sized_rows):
        pixels = legend_pixels(fig)
        (legend,) = fig.legends
        assert pixels == min(float(text.get_fontsize()) for text in legend.get_texts()) * DPI / 72
        assert pixels >= 11
        width = re.match(r'<svg width="([0-9]+)"', inline_svg(fig, "narrow", ""))
        assert width is not None and int(width.group(1)) <= NARROW_PAGE_PX, width


def _texts(fig: Figure) -> list[Text]:
    """Every text the figure draws: titles, axis labels, tick labels in view, legends."""
    fig.canvas.draw()
    texts: list[Text] = []
    for ax in fig.axes:
        texts += [ax.title, ax.xaxis.label, ax.yaxis.label]
        for axis in (ax.xaxis, ax.yaxis):
            low, high = sorted(axis.get_view_interval())
            texts += [
                label
                for location, label in zip(
                    axis.get_majorticklocs(), axis.get_majorticklabels(), strict=True
                )
                if low <= location <= high  # labels of ticks out of view are not drawn
            ]
    for legend in fig.legends:
        texts += legend.get_texts()
    return [t for t in texts if t.get_visible() and t.get_text().strip()]


def test_no_text_overlaps_or_leaves_the_figure(rows: Rows, sized_rows: Rows) -> None:
    for fig in _figures(rows, sized_rows):
        renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
        boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in _texts(fig)]
        assert len(boxes) > 10
        for text, box in boxes:
            assert fig.bbox.contains(box.x0, box.y0) and fig.bbox.contains(box.x1, box.y1), text
        for (a, box_a), (b, box_b) in itertools.combinations(boxes, 2):
            assert not box_a.overlaps(box_b), (a, b)
        plt.close(fig)


def test_the_legend_stays_off_the_data(rows: Rows, sized_rows: Rows) -> None:
    for fig in _figures(rows, sized_rows):
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
        (legend,) = fig.legends
        for ax in fig.axes:
            assert not legend.get_window_extent(renderer).overlaps(ax.get_window_extent(renderer))
            box = ax.bbox.padded(0.5)  # every point and reference line inside the axes
            for line in ax.get_lines():
                points = np.asarray(line.get_xydata(), dtype=float)
                points = points[~np.isnan(points).any(axis=1)]
                shown = line.get_transform().transform(points)
                assert all(box.contains(x, y) for x, y in shown), line
        plt.close(fig)


def test_compression_ticks_are_plain_powers_of_two(rows: Rows) -> None:
    fig = figure_score_vs_compression(rows, NAMES)
    assert fig is not None
    fig.canvas.draw()
    compressions = [1 / r for t in rows.values() if (r := efficiency_values(t).get(
        "compression_ratio"))]
    for ax in fig.axes:
        ticks = list(ax.get_xticks())
        assert [t.get_text() for t in ax.get_xticklabels()] == [f"{t:g}×" for t in ticks]
        assert all(math.log2(t).is_integer() for t in ticks)
        assert ticks[0] <= min(compressions) and max(compressions) <= ticks[-1]
        assert ticks[-1] / ticks[0] < 2 * max(compressions) / min(compressions)
        assert len(ax.xaxis.get_minorticklocs()) == 0
    plt.close(fig)


def _bits_axis_of(rows: Rows) -> tuple[list[float], list[str], list[float]]:
    """Ticks, tick labels and plotted x of the first panel of the bits-per-byte plot."""
    fig = figure_score_vs_bits_per_byte(rows, NAMES)
    assert fig is not None
    fig.canvas.draw()
    ax = fig.axes[0]
    ticks = [float(t) for t in ax.get_xticks()]
    labels = [t.get_text() for t in ax.get_xticklabels()]
    xs = [float(x) for line in ax.get_lines() if line.get_linestyle() in ("-", "None")
          for x in np.asarray(line.get_xdata(), dtype=float)]
    assert ax.get_xscale() == "log" and len(ax.xaxis.get_minorticklocs()) == 0
    plt.close(fig)
    return ticks, labels, xs


def test_bits_per_byte_ticks_are_plain_numbers_around_the_points(sized_rows: Rows,
                                                                 tmp_path: Path) -> None:
    ticks, labels, xs = _bits_axis_of(sized_rows)
    assert ticks == pytest.approx([0.1, 1, 10, 100, 1000, 10000])
    assert labels == ["0.1", "1", "10", "100", "1000", "10000"]
    assert ticks[0] <= min(xs) < ticks[1] and ticks[-2] < max(xs) <= ticks[-1]
    for args, bits in (("none", 2.3), ("truncate,rate=0.5", 0.9)):
        write_results(tmp_path / args, f"pretrained=m,compressor={args}", _sized(0.5, bits))
    ticks, labels, _xs = _bits_axis_of(merge_runs(read_runs([tmp_path], with_samples=False)))
    assert labels == ["0.5", "1", "2", "5"]


def test_one_marker_per_compressor_family(rows: Rows) -> None:
    fig = figure_score_vs_compression(rows, NAMES)
    assert fig is not None
    markers = {
        line.get_color(): line.get_marker()
        for ax in fig.axes
        for line in ax.get_lines()
        if line.get_marker() not in (None, "None", "", "_")  # "_": error bar caps
    }
    families = {family(key) for key in rows}
    assert len(families) > 1 and len(set(markers.values())) == len(families)
    assert set(markers.values()) == {FAMILY_MARKERS[f] for f in families}
    (legend,) = fig.legends
    entries = [t.get_text() for t in legend.get_texts()]
    handles = legend.legend_handles
    by_label = {
        text: handle.get_marker()
        for text, handle in zip(entries, handles, strict=True)
        if isinstance(handle, Line2D) and handle.get_marker() not in (None, "None", "")
    }
    for key in rows:
        curve = key.title if key.compressor != "truncate" else "truncate"
        assert by_label[curve] == FAMILY_MARKERS[family(key)], curve
    plt.close(fig)


def test_length_plot_spans_the_lengths_that_were_run(rows: Rows) -> None:
    fig = figure_score_vs_length(rows, NAMES)
    assert fig is not None
    (ax,) = fig.axes
    lengths = regeneration_tasks()
    run = sorted({lengths[t] for tasks in rows.values() for t in tasks if t in lengths})
    assert len(run) > 1 and list(ax.get_xticks()) == run
    plotted = {x for line in ax.get_lines() for x in line.get_xdata()}  # type: ignore[union-attr]
    assert plotted == set(run)
    plt.close(fig)


def test_one_length_gives_no_length_plot_but_a_note(tmp_path: Path) -> None:
    regeneration = {"compressed_regeneration_96": {"rouge_l_f": 0.5, "bleu": 0.2}}
    write_results(tmp_path / "a", "pretrained=m,compressor=none", regeneration)
    rows = merge_runs(read_runs([tmp_path], with_samples=False))
    assert figure_score_vs_length(rows, NAMES) is None
    (note,) = plot_notes(rows)
    assert "one regeneration length (96 tokens)" in note


MEASURED = {"compression_ratio": 0.5, "compressed_bits": 400.0, "original_tokens": 100.0,
            "original_bytes": 350.0}
EVERY_PLOT = {
    "compressed_squad": {"squad_f1": 0.5, **MEASURED},
    "compressed_regeneration_96": {"rouge_l_f": 0.4, **MEASURED},
    "compressed_regeneration_192": {"rouge_l_f": 0.3, **MEASURED},
}


def _every_figure(rows: Rows) -> list[Figure]:
    figures = [figure(rows, NAMES) for figure in
               (figure_score_vs_compression, figure_score_vs_length,
                figure_score_vs_bits_per_byte)]
    assert all(fig is not None for fig in figures)
    return [fig for fig in figures if fig is not None]


def _legend_texts(fig: Figure) -> list[str]:
    (legend,) = fig.legends
    return [text.get_text() for text in legend.get_texts()]


def test_labels_are_drawn_literally_in_every_plot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    label = "truncate (note=$x_1^2$)"
    write_results(tmp_path / "a", "pretrained=m,compressor=truncate,note=$x_1^2$", EVERY_PLOT)
    write_results(tmp_path / "b", "pretrained=m,compressor=none", EVERY_PLOT)
    parsed: list[str] = []
    parse = matplotlib.mathtext.MathTextParser.parse

    def spy(self: Any, text: str, *args: Any, **kwargs: Any) -> Any:
        parsed.append(text)
        return parse(self, text, *args, **kwargs)

    monkeypatch.setattr(matplotlib.mathtext.MathTextParser, "parse", spy)
    for fig in _every_figure(merge_runs(read_runs([tmp_path], with_samples=False))):
        fig.canvas.draw()
        assert label in _legend_texts(fig)
        assert not [text for text in parsed if "x_1" in text]
        plt.close(fig)


def test_curves_whose_paths_end_alike_keep_apart_in_the_legend(tmp_path: Path) -> None:
    for folder, checkpoint, mem in (("a", "/ckpt/good/final", 4), ("b", "/ckpt/broken/final", 8)):
        write_results(tmp_path / folder,
                      f"pretrained=m,compressor=500x,init_from={checkpoint},num_mem={mem}",
                      EVERY_PLOT)
    rows = merge_runs(read_runs([tmp_path], with_samples=False))
    for fig in (figure_score_vs_compression(rows, NAMES),
                figure_score_vs_bits_per_byte(rows, NAMES)):
        assert fig is not None
        entries = _legend_texts(fig)
        assert "500x (init_from=good/final)" in entries
        assert "500x (init_from=broken/final)" in entries
        plt.close(fig)
