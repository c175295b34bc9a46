"""Bits per original byte and per original token, the llmzip floor: efficiency columns and the
score-vs-bits-per-byte plot."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from leaderboard import read_runs
from leaderboard._bits import bits_per_byte, bits_per_token, byte_floors, floor_bits
from leaderboard._cli import main
from leaderboard._columns import BITS_COLUMNS
from leaderboard._metrics import metric_style
from leaderboard._page_plots import page_plots
from leaderboard._plots import figure_score_vs_bits_per_byte
from leaderboard._runs import merge_runs
from leaderboard._tables import Rows, efficiency_table
from tests.leaderboard._lmeval_files import write_results
from tests.leaderboard.conftest import FIXTURE_RUNS

NAMES = metric_style("squad")
BITS_TITLES = [column.title for column in BITS_COLUMNS]
SQUAD, RACE = "compressed_squad", "compressed_race"
# row folder -> (model_args, {task: (squad_f1, compressed_bits, original_tokens, bytes)})
RUNS: dict[str, tuple[str, dict[str, tuple[float, float, float, float]]]] = {
    "llmzip": ("pretrained=m,compressor=llmzip",
               {SQUAD: (0.60, 500.0, 100.0, 400.0), RACE: (0.40, 900.0, 150.0, 700.0)}),
    "none": ("pretrained=m,compressor=none", {SQUAD: (0.60, 520.0, 100.0, 400.0)}),
    "500x": ("pretrained=m,compressor=500x,num_mem=4",
             {SQUAD: (0.30, 40960.0, 100.0, 400.0), RACE: (0.20, 40960.0, 150.0, 700.0)}),
    "llmlingua": ("pretrained=m,compressor=llmlingua,rate=0.5",
                  {SQUAD: (0.35, 300.0, 100.0, 400.0)}),
    "gist": ("pretrained=m,compressor=gist", {SQUAD: (0.25, 10240.0, 100.0, 400.0)}),
}
TOKENS, BYTES = 2, 3


def _expected(name: str, tasks: tuple[str, ...] | None = None, per: int = TOKENS) -> float:
    chosen = {t: v for t, v in RUNS[name][1].items() if tasks is None or t in tasks}
    return sum(v[1] for v in chosen.values()) / sum(v[per] for v in chosen.values())


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bits-runs")
    for folder, (args, tasks) in RUNS.items():
        scores = {task: {"squad_f1": f1, "compressed_bits": bits, "original_tokens": tokens,
                         "original_bytes": size}
                  for task, (f1, bits, tokens, size) in tasks.items()}
        write_results(root / folder, args, scores)
    return root


@pytest.fixture(scope="module")
def rows(runs: Path) -> Rows:
    return merge_runs(read_runs([runs], with_samples=False))


def test_efficiency_table_shows_bits_the_floor_and_their_ratio(rows: Rows) -> None:
    table = efficiency_table(rows)
    assert table is not None and table.columns[-4:] == BITS_TITLES
    assert BITS_TITLES[0] == "bits / original byte"
    shown = {cells[1].display: [c.value for c in cells[-4:]] for cells in table.rows}
    for key in rows:
        name = key.compressor
        per_byte, bits, floor, ratio = shown[key.title]
        assert per_byte == pytest.approx(_expected(name, per=BYTES))
        assert bits == pytest.approx(_expected(name))
        common = tuple(RUNS[name][1])
        assert floor == pytest.approx(_expected("llmzip", common))
        assert ratio == pytest.approx(_expected(name) / _expected("llmzip", common))
    assert any("physical limit" in note for note in table.notes)


def test_bits_pool_samples_rather_than_averaging_ratios(tmp_path: Path) -> None:
    date = "2026-01-01T00-00-00.000000"
    folder = tmp_path / "run"
    write_results(folder, "pretrained=m,compressor=truncate,rate=0.5",
                  {SQUAD: {"squad_f1": 0.5, "compressed_bits": 200.0, "original_tokens": 30.0}},
                  date=date)
    logged = [{"doc_id": 0, "compressed_bits": 100.0, "original_tokens": 10,
               "original_bytes": 40},
              {"doc_id": 1, "compressed_bits": 300.0, "original_tokens": 50,
               "original_bytes": 160}]
    (folder / f"samples_{SQUAD}_{date}.jsonl").write_text(
        "".join(json.dumps(record) + "\n" for record in logged), encoding="utf-8")
    (tasks,) = merge_runs(read_runs([tmp_path])).values()
    assert bits_per_token(tasks) == pytest.approx(400.0 / 60.0)
    assert bits_per_byte(tasks) == pytest.approx(400.0 / 200.0)


def test_no_floor_without_an_llmzip_row_of_that_model(rows: Rows, tmp_path: Path) -> None:
    write_results(tmp_path / "other", "pretrained=other,compressor=none",
                  {SQUAD: {"squad_f1": 0.5, "compressed_bits": 100.0, "original_tokens": 20.0}})
    (key,) = merge_runs(read_runs([tmp_path], with_samples=False))
    assert floor_bits({key: rows[next(iter(rows))]}, key) is None


def _panel(fig: Figure, title: str) -> Axes:
    (ax,) = [ax for ax in fig.axes if ax.get_title() == title]
    return ax


def _reference_lines(ax: Axes) -> tuple[list[float], list[float]]:
    """The x of the dashed vertical lines and the y of the dotted horizontal ones."""
    lines = ax.get_lines()
    floors = [float(np.asarray(line.get_xdata(), dtype=float)[0]) for line in lines
              if line.get_linestyle() == "--"]
    full = [float(np.asarray(line.get_ydata(), dtype=float)[0]) for line in lines
            if line.get_linestyle() == ":"]
    return floors, full


def _plotted_x(ax: Axes) -> set[float]:
    return {round(float(x), 6) for line in ax.get_lines() if line.get_linestyle() in ("-", "None")
            for x in np.asarray(line.get_xdata(), dtype=float)}


def test_bits_per_byte_plot_has_a_panel_per_benchmark_with_floor_and_full_context(
        rows: Rows) -> None:
    fig = figure_score_vs_bits_per_byte(rows, NAMES)
    assert fig is not None
    assert [ax.get_title() for ax in fig.axes] == ["SQuAD", "RACE"]
    for title, task in (("SQuAD", SQUAD), ("RACE", RACE)):
        ax = _panel(fig, title)
        floor = _expected("llmzip", (task,), per=BYTES)
        assert byte_floors(rows, (task,)) == {"m": pytest.approx(floor)}
        floors, full = _reference_lines(ax)
        assert floors == [pytest.approx(floor)]
        ran = [name for name, (_args, tasks) in RUNS.items() if task in tasks]
        assert _plotted_x(ax) == {round(_expected(name, (task,), per=BYTES), 6) for name in ran}
        assert ax.get_xscale() == "log" and ax.get_xlabel() == "bits per original byte"
        with_none = "none" in ran
        assert full == ([pytest.approx(RUNS["none"][1][task][0] * 100)] if with_none else [])
    (legend,) = fig.legends
    entries = [text.get_text() for text in legend.get_texts()]
    assert entries[-2:] == ["llmzip: lossless floor", "full context (none): score"]
    plt.close(fig)


def test_the_full_context_line_falls_back_to_the_stock_run(tmp_path: Path) -> None:
    sized = {"compressed_bits": 400.0, "original_tokens": 100.0, "original_bytes": 300.0}
    write_results(tmp_path / "stock", "pretrained=m", {SQUAD: {"squad_f1": 0.7}}, model="hf")
    write_results(tmp_path / "cut", "pretrained=m,compressor=truncate,rate=0.5",
                  {SQUAD: {"squad_f1": 0.4, **sized}})
    fig = figure_score_vs_bits_per_byte(merge_runs(read_runs([tmp_path])), NAMES)
    assert fig is not None
    floors, full = _reference_lines(_panel(fig, "SQuAD"))
    assert not floors and full == [pytest.approx(70.0)]
    (legend,) = fig.legends
    entries = [text.get_text() for text in legend.get_texts()]
    assert "full context (none): score" in entries
    assert "llmzip: lossless floor" not in entries
    plt.close(fig)


def _bits_plots(rows: Rows) -> list[str]:
    panels, legends = page_plots(rows, NAMES)
    return ([plot.name for plot in panels if plot.view == "bits"]
            + [legend.name for legend in legends if legend.view == "bits"])


def test_the_page_renders_the_plot_and_the_fixtures_have_none(runs: Path, tmp_path: Path,
                                                             rows: Rows) -> None:
    assert _bits_plots(rows) == ["bits-qa", "bits-squad", "bits-race", "legend-bits"]
    assert main(["build", str(runs), "--out", str(tmp_path / "site")]) == 0
    page = (tmp_path / "site" / "index.html").read_text(encoding="utf-8")
    assert 'id="plot-bits-squad"' in page and "bits / original byte" in page
    plain = merge_runs(read_runs([FIXTURE_RUNS], with_samples=False))
    table = efficiency_table(plain)
    assert table is not None and not set(BITS_TITLES) & set(table.columns)
    assert _bits_plots(plain) == []
