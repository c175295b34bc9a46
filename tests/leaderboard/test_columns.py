"""Typed columns: declared metrics become columns, and tables are built from lists of them."""

from __future__ import annotations

from bench import specs
from leaderboard import read_runs
from leaderboard._columns import COMPRESSION, Column, measured_column, score_column
from leaderboard._runs import merge_runs
from leaderboard._tables import Cell, build_table, efficiency_columns, efficiency_table
from tests.leaderboard.conftest import FIXTURE_RUNS


def _rate(value: float) -> str:
    """A rate as shown: its 4-decimal form without trailing zeros, but 2 decimals at least."""
    text = f"{value:.4f}".rstrip("0")
    return text if len(text.split(".")[1]) >= 2 else f"{value:.2f}"


def test_rates_show_two_decimals_and_more_only_where_two_would_round():
    for name in ("compression_ratio", "requested_rate"):
        column = measured_column(next(m for m in specs.metrics("efficiency") if m.name == name))
        for value in (0.25, 0.125, 1.0, 0.5, 1 / 3, 0.33000000000000007, 0.2564102, 0.05):
            shown = Cell.number(value, column.decimals(value)).display
            assert shown == _rate(value), (name, value)
    assert _rate(0.25) == "0.25" and _rate(0.125) == "0.125" and _rate(1.0) == "1.00"


def test_a_measured_column_comes_from_its_metric_declaration():
    rss = next(m for m in specs.metrics("efficiency") if m.name == "peak_rss_mb")
    assert measured_column(rss) == Column("peak_rss_mb", "peak RSS MB", "efficiency", "max",
                                          True, 1)
    seconds = specs.MetricSpec("kv_seconds", "KV s", "efficiency", True)
    assert measured_column(seconds).digits == 4 and not measured_column(seconds).lower_is_better


def test_a_table_is_built_from_a_list_of_typed_columns():
    rows = merge_runs(read_runs([FIXTURE_RUNS / "truncate_0.5"], with_samples=False))
    columns = [score_column("SQuAD F1", "squad_f1", ("compressed_squad",), "questions"),
               Column("tenfold", "x10", "derived", "single", False, 3)]

    def cell(key: object, column: Column) -> Cell:
        return Cell.number(10.0 if column.key == "tenfold" else 1.5, column.digits)

    table = build_table("toy", "Toy", rows, columns, cell)
    assert table.columns == ["Model", "Compressor", "SQuAD F1", "x10"]
    assert [[c.display for c in row[2:]] for row in table.rows] == [["1.50", "10.000"]]


def test_the_compression_factor_follows_the_rate_in_the_efficiency_table():
    declared = specs.metrics("efficiency")
    columns = efficiency_columns(declared)
    rate = columns.index(measured_column(declared[0]))
    assert declared[0].name == "compression_ratio" and columns[rate + 1] == COMPRESSION
    rows = merge_runs(read_runs([FIXTURE_RUNS / "truncate_0.5"], with_samples=True))
    table = efficiency_table(rows)
    assert table is not None
    titles = dict(zip(table.columns, table.rows[0], strict=True))
    rate_cell, factor = titles["rate (compressed/original)"], titles["compression (x)"]
    assert isinstance(rate_cell.value, float) and rate_cell.display == _rate(rate_cell.value)
    assert factor.value == 1.0 / rate_cell.value and factor.display == f"{factor.value:.1f}"
