"""The normalisation against the 500xCompressor paper's published tables."""

from __future__ import annotations

from pathlib import Path

import pytest

from leaderboard import BuildOptions, LeaderboardError, make_tables, normalise, read_runs
from tests.leaderboard._lmeval_files import write_results

# Raw Table 2 of the paper (F1, EM per benchmark), from REFERENCE.md.
BENCHES = ("arxivqa", "squad", "relation_extraction", "hotpotqa", "race")
INSTRUCT = [(55.90, 13.74), (70.65, 36.79), (71.36, 53.15), (69.37, 43.19), (39.52, 13.94)]
X16 = [(40.77, 14.00), (50.01, 28.59), (68.73, 50.44), (41.68, 22.99), (35.42, 10.97)]
X1 = [(29.73, 10.60), (42.86, 22.75), (63.09, 45.31), (37.47, 21.13), (21.75, 7.56)]


def _col(row: list[tuple[float, float]], i: int) -> dict[str, float]:
    return {bench: pair[i] for bench, pair in zip(BENCHES, row, strict=True)}


def test_paper_500_to_1_matches_table_5() -> None:
    assert round(normalise(_col(X1, 0), _col(INSTRUCT, 0)).mean or 0, 2) == 62.26
    assert round(normalise(_col(X1, 1), _col(INSTRUCT, 1)).mean or 0, 2) == 65.48


def test_paper_500_to_16_follows_the_formula() -> None:
    # The paper's own 500->16 row disagrees with its raw table in two cells: check the formula.
    for i in (0, 1):
        expected = (
            sum(
                x / b * 100
                for (x, b) in zip(_col(X16, i).values(), _col(INSTRUCT, i).values(), strict=True)
            )
            / 5
        )
        result = normalise(_col(X16, i), _col(INSTRUCT, i))
        assert result.mean == pytest.approx(expected, abs=1e-9)
        assert result.ratios["squad"] == pytest.approx(X16[1][i] / INSTRUCT[1][i] * 100)
    # mean of ratios, not the ratio of the means
    ratio_of_means = sum(_col(X16, 0).values()) / sum(_col(INSTRUCT, 0).values()) * 100
    assert abs((normalise(_col(X16, 0), _col(INSTRUCT, 0)).mean or 0) - ratio_of_means) > 0.5


def test_zero_or_missing_baseline_is_left_out_of_the_mean() -> None:
    result = normalise({"a": 10.0, "b": 5.0, "c": 1.0}, {"a": 20.0, "b": 0.0})
    assert result.ratios == {"a": 50.0, "b": None, "c": None}
    assert result.used == ("a",) and result.mean == 50.0


def _paper_runs(tmp_path: Path, with_x16: bool = True) -> list[Path]:
    rows = {"none": ("compressor=none", INSTRUCT), "x1": ("compressor=500x,num_mem=1", X1)}
    if with_x16:
        rows["x16"] = ("pretrained=llama3,compressor=500x,num_mem=16", X16)
    paths = []
    for name, (args, table) in rows.items():
        args = args if "pretrained" in args else f"pretrained=llama3,{args}"
        scores = {
            f"compressed_{bench}": {"squad_f1": f1 / 100, "squad_exact_match": em / 100}
            for bench, (f1, em) in zip(BENCHES, table, strict=True)
        }
        paths.append(write_results(tmp_path / name / "llama3", args, scores))
    return paths


def _row(table, label: str) -> dict[str, object]:
    for row in table.rows:
        if row[1].display == label:
            return {column: cell.value for column, cell in zip(table.columns, row, strict=True)}
    raise AssertionError(f"no row {label} in {[r[1].display for r in table.rows]}")


def test_normalised_table_from_results_files_reproduces_the_paper(tmp_path: Path) -> None:
    _paper_runs(tmp_path)
    tables = {t.name: t for t in make_tables(read_runs([tmp_path]), BuildOptions(out=tmp_path))}
    x1 = _row(tables["normalised"], "500x (num_mem=1)")
    assert round(float(x1["Avg F1"]), 2) == 62.26  # type: ignore[arg-type]
    assert round(float(x1["Avg EM"]), 2) == 65.48  # type: ignore[arg-type]
    assert x1["Benchmarks"] == "all"
    assert _row(tables["normalised"], "none")["Avg F1"] == pytest.approx(100.0)
    raw = _row(tables["raw"], "500x (num_mem=16)")
    assert raw["SQuAD F1"] == pytest.approx(50.01) and raw["RACE EM"] == pytest.approx(10.97)
    assert raw["Avg F1"] == pytest.approx(sum(f for f, _ in X16) / 5)
    delta = _row(tables["delta"], "500x (num_mem=1)")
    assert delta["ArxivQA F1"] == pytest.approx(29.73 - 55.90)


def test_subset_of_benchmarks_is_named(tmp_path: Path) -> None:
    for name, args, values in (
        ("none", "compressor=none", INSTRUCT),
        ("x1", "compressor=500x,num_mem=1", X1),
    ):
        scores = {
            f"compressed_{b}": {"squad_f1": f / 100, "squad_exact_match": e / 100}
            for b, (f, e) in zip(BENCHES[:2], values[:2], strict=True)
        }
        write_results(tmp_path / name, f"pretrained=m,{args}", scores)
    table = {t.name: t for t in make_tables(read_runs([tmp_path]), BuildOptions(out=tmp_path))}[
        "normalised"
    ]
    row = _row(table, "500x (num_mem=1)")
    assert row["Benchmarks"] == "ArxivQA, SQuAD"
    assert row["Avg F1"] == pytest.approx((29.73 / 55.90 + 42.86 / 70.65) * 50)
    assert "RACE F1" not in table.columns


def test_missing_baseline_names_the_needed_run(tmp_path: Path) -> None:
    paths = _paper_runs(tmp_path, with_x16=False)
    paths[0].unlink()
    with pytest.raises(
        LeaderboardError, match=r"no baseline for base model 'llama3'.*compressor 'none'"
    ):
        make_tables(read_runs([tmp_path]), BuildOptions(out=tmp_path))
