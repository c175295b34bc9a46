"""Bits per original token and the llmzip floor: efficiency columns and the score-vs-bits plot."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from leaderboard import read_runs
from leaderboard._bits import bits_per_token, floor_bits
from leaderboard._cli import main
from leaderboard._columns import BITS_COLUMNS
from leaderboard._metrics import metric_style
from leaderboard._plots import all_plots, bits_floors, figure_score_vs_bits
from leaderboard._runs import merge_runs
from leaderboard._tables import Rows, efficiency_table
from tests.leaderboard._lmeval_files import write_results
from tests.leaderboard.conftest import FIXTURE_RUNS

NAMES = metric_style("squad")
BITS_TITLES = [column.title for column in BITS_COLUMNS]
SQUAD, RACE = "compressed_squad", "compressed_race"
# row folder -> (model_args, {task: (squad_f1, compressed_bits, original_tokens)})
RUNS: dict[str, tuple[str, dict[str, tuple[float, float, float]]]] = {
    "llmzip": ("pretrained=m,compressor=llmzip",
               {SQUAD: (0.60, 500.0, 100.0), RACE: (0.40, 900.0, 150.0)}),
    "none": ("pretrained=m,compressor=none", {SQUAD: (0.60, 520.0, 100.0)}),
    "500x": ("pretrained=m,compressor=500x,num_mem=4", {SQUAD: (0.30, 40960.0, 100.0)}),
    "llmlingua": ("pretrained=m,compressor=llmlingua,rate=0.5", {SQUAD: (0.35, 300.0, 100.0)}),
    "gist": ("pretrained=m,compressor=gist", {SQUAD: (0.25, 10240.0, 100.0)}),
}


def _expected(name: str, tasks: tuple[str, ...] | None = None) -> float:
    chosen = {t: v for t, v in RUNS[name][1].items() if tasks is None or t in tasks}
    return sum(b for _f, b, _t in chosen.values()) / sum(t for _f, _b, t in chosen.values())


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bits-runs")
    for folder, (args, tasks) in RUNS.items():
        scores = {task: {"squad_f1": f1, "compressed_bits": bits, "original_tokens": tokens}
                  for task, (f1, bits, tokens) in tasks.items()}
        write_results(root / folder, args, scores)
    return root


@pytest.fixture(scope="module")
def rows(runs: Path) -> Rows:
    return merge_runs(read_runs([runs], with_samples=False))


def test_efficiency_table_shows_bits_the_floor_and_their_ratio(rows: Rows) -> None:
    table = efficiency_table(rows)
    assert table is not None and table.columns[-3:] == BITS_TITLES
    shown = {cells[1].display: [c.value for c in cells[-3:]] for cells in table.rows}
    for key in rows:
        name = key.compressor
        bits, floor, ratio = shown[key.title]
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
    logged = [{"doc_id": 0, "compressed_bits": 100.0, "original_tokens": 10},
              {"doc_id": 1, "compressed_bits": 300.0, "original_tokens": 50}]
    (folder / f"samples_{SQUAD}_{date}.jsonl").write_text(
        "".join(json.dumps(record) + "\n" for record in logged), encoding="utf-8")
    (tasks,) = merge_runs(read_runs([tmp_path])).values()
    assert bits_per_token(tasks) == pytest.approx(400.0 / 60.0)


def test_no_floor_without_an_llmzip_row_of_that_model(rows: Rows, tmp_path: Path) -> None:
    write_results(tmp_path / "other", "pretrained=other,compressor=none",
                  {SQUAD: {"squad_f1": 0.5, "compressed_bits": 100.0, "original_tokens": 20.0}})
    (key,) = merge_runs(read_runs([tmp_path], with_samples=False))
    assert floor_bits({key: rows[next(iter(rows))]}, key) is None


def test_score_vs_bits_plot_puts_every_row_on_one_axis_with_the_floor(rows: Rows) -> None:
    fig = figure_score_vs_bits(rows, NAMES)
    assert fig is not None
    ax = fig.axes[0]
    floor = _expected("llmzip", (SQUAD, RACE))
    assert bits_floors(rows, (SQUAD, RACE)) == {"m": pytest.approx(floor)}
    xs = [np.asarray(line.get_xdata(), dtype=float) for line in ax.get_lines()]
    dashed = [line.get_linestyle() == "--" and len(set(x)) == 1
              for line, x in zip(ax.get_lines(), xs, strict=True)]
    assert [x[0] for x, flag in zip(xs, dashed, strict=True) if flag] == [pytest.approx(floor)]
    plotted = {round(float(value), 6) for x, flag in zip(xs, dashed, strict=True) if not flag
               for value in x}
    assert plotted == {round(_expected(name, (SQUAD, RACE)), 6) for name in RUNS}
    assert ax.get_xscale() == "log"


def test_the_page_renders_the_plot_and_the_fixtures_have_none(runs: Path, tmp_path: Path,
                                                             rows: Rows) -> None:
    assert [plot.name for plot in all_plots(rows, NAMES)][-1] == "score_vs_bits"
    assert main(["build", str(runs), "--out", str(tmp_path / "site")]) == 0
    page = (tmp_path / "site" / "index.html").read_text(encoding="utf-8")
    assert 'id="plot-score_vs_bits"' in page and "floor: llmzip bits / token" in page
    plain = merge_runs(read_runs([FIXTURE_RUNS], with_samples=False))
    table = efficiency_table(plain)
    assert table is not None and not set(BITS_TITLES) & set(table.columns)
    assert "score_vs_bits" not in [plot.name for plot in all_plots(plain, NAMES)]
