"""Tables say what they measured: n per cell, --limit, standard errors, readable labels,
unambiguous baselines (a stock ``--model hf`` run beside a ``compressed`` ``none`` run)."""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path
from typing import Any

import pytest

from leaderboard import read_runs, run_folder_name
from leaderboard._cli import main
from leaderboard._metrics import qa_tasks, regeneration_tasks
from leaderboard._runs import STOCK_SUFFIX, RowKey, load_run, model_name
from leaderboard._tables import ALL_ZERO, LIMITED
from tests.leaderboard._lmeval_files import write_results
from tests.leaderboard.conftest import FIXTURE_RUNS, fixture_results

STOCK_RUN, NONE_RUN = "stock_hf_limit1", "instruct"


def _build(out: Path, *extra: str, runs: Path = FIXTURE_RUNS) -> dict[str, Any]:
    assert main(["build", str(runs), "--out", str(out), *extra]) == 0
    board: dict[str, Any] = json.loads((out / "leaderboard.json").read_text(encoding="utf-8"))
    return board


def _table(board: dict[str, Any], name: str) -> dict[str, dict[str, dict[str, Any]]]:
    """Rows of a table by compressor cell, each as {column: cell}."""
    table = next(t for t in board["tables"] if t["name"] == name)
    return {
        row[1]["display"]: dict(zip(table["columns"], row, strict=True)) for row in table["rows"]
    }


def _label(run: str) -> str:
    (path,) = (FIXTURE_RUNS / run).rglob("results_*.json")
    return load_run(path, with_samples=False).key.title


@pytest.fixture(scope="module")
def board(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return _build(tmp_path_factory.mktemp("site"))


def _counts_title(task: str) -> str:
    titles = qa_tasks()
    return f"{titles[task]} n" if task in titles else f"n {regeneration_tasks()[task]}"


def test_every_score_says_how_many_documents_it_averages(board: dict[str, Any]) -> None:
    raw = _table(board, "raw")
    for run in (STOCK_RUN, NONE_RUN, "truncate_0.5"):
        counts = fixture_results(run)["n-samples"]
        row = raw[_label(run)]
        for task, count in counts.items():
            cell = row[_counts_title(task)]
            assert cell["value"] == count["effective"]
            cut = count["original"] > count["effective"]
            expected = f"{count['effective']} of {count['original']}" if cut else str(
                count["effective"]
            )
            assert cell["display"] == expected
            assert ("--limit" in cell["hint"]) == cut
    assert any(c["original"] > c["effective"] for c in fixture_results(STOCK_RUN)["n-samples"]
               .values()), "the stock fixture run must use --limit"


def test_limited_rows_are_flagged(board: dict[str, Any]) -> None:
    raw = _table(board, "raw")
    for run in (STOCK_RUN, NONE_RUN, "zero_shot"):
        limited = fixture_results(run)["config"]["limit"] is not None
        assert (LIMITED in raw[_label(run)]["Notes"]["display"]) == limited
    notes = next(t for t in board["tables"] if t["name"] == "raw")["notes"]
    assert any("--limit" in note and "'a of b'" in note for note in notes)
    limits = {Path(r["path"]).parts[-3]: r["limit"] for r in board["runs"]}
    assert limits[STOCK_RUN] == fixture_results(STOCK_RUN)["config"]["limit"]
    assert limits[NONE_RUN] is None


def test_standard_errors_are_lm_evals_and_combine_in_averages(tmp_path: Path) -> None:
    board = _build(tmp_path / "site")
    row = _table(board, "raw")[_label(NONE_RUN)]
    results = fixture_results(NONE_RUN)["results"]
    errors = []
    for task, bench in qa_tasks().items():
        error = results[task]["squad_f1_stderr,none"] * 100
        value = results[task]["squad_f1,none"] * 100
        cell = row[f"{bench} F1"]
        assert cell["stderr"] == pytest.approx(error)
        assert cell["display"] == f"{value:.2f} ± {error:.2f}"
        errors.append(error)
    average = row["Avg F1"]
    assert average["stderr"] == pytest.approx(math.sqrt(sum(e * e for e in errors)) / len(errors))
    with (tmp_path / "site" / "raw.csv").open(encoding="utf-8") as handle:
        csv_rows = {r["Compressor"]: r for r in csv.DictReader(handle)}
    assert float(csv_rows[_label(NONE_RUN)]["SQuAD F1 stderr"]) == pytest.approx(
        results["compressed_squad"]["squad_f1_stderr,none"] * 100
    )
    assert csv_rows[_label(STOCK_RUN)]["SQuAD F1 stderr"] == ""  # n = 1: lm-eval has none
    assert "± " in (tmp_path / "site" / "raw.md").read_text(encoding="utf-8")
    assert r"\ensuremath{\pm}" in (tmp_path / "site" / "raw.tex").read_text(encoding="utf-8")
    page = (tmp_path / "site" / "index.html").read_text(encoding="utf-8")
    n = fixture_results(NONE_RUN)["n-samples"]["compressed_squad"]["effective"]
    assert f'title="squad_f1, n = {n} questions' in page
    assert '<span class="se"> ± ' in page


def test_stock_run_and_none_run_get_distinct_rows(board: dict[str, Any]) -> None:
    raw = _table(board, "raw")
    stock, none = _label(STOCK_RUN), _label(NONE_RUN)
    assert stock == "hf" + STOCK_SUFFIX and none == "none"
    assert raw[stock]["Model"]["display"] == raw[none]["Model"]["display"]
    delta = _table(board, "delta")
    assert all(cell["value"] in (0, None) for cell in list(delta[none].values())[2:])


@pytest.mark.parametrize("name", ["hf", "hf (stock lm-eval)"])
def test_the_stock_run_can_be_the_baseline(tmp_path: Path, name: str) -> None:
    board = _build(tmp_path / "site", "--baseline-compressor", name, "--normalise-to", name)
    stock, none = _label(STOCK_RUN), _label(NONE_RUN)
    delta, raw = _table(board, "delta"), _table(board, "raw")
    assert delta[stock]["SQuAD F1"]["value"] == 0
    assert delta[none]["SQuAD F1"]["value"] == pytest.approx(
        raw[none]["SQuAD F1"]["value"] - raw[stock]["SQuAD F1"]["value"]
    )
    assert _table(board, "normalised")[stock]["SQuAD F1"]["value"] == pytest.approx(100.0)


def test_a_baseline_that_matches_no_row_lists_the_rows(
    board: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["build", str(FIXTURE_RUNS), "--out", str(tmp_path / "o")]
    assert main([*argv, "--baseline-compressor", "llmlingua"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "--baseline-compressor 'llmlingua'" in error
    for label in _table(board, "raw"):
        assert repr(label) in error
    assert main([*argv, "--baseline-compressor", "truncate"]) == 2
    error = capsys.readouterr().err
    assert "ambiguous" in error
    truncates = [label for label in _table(board, "raw") if label.startswith("truncate")]
    assert len(truncates) == 2 and all(repr(label) in error for label in truncates)
    assert main([*argv, "--baseline-compressor", truncates[0]]) == 0


def test_without_a_none_run_the_stock_run_is_the_reference(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    shutil.copytree(FIXTURE_RUNS, runs, ignore=shutil.ignore_patterns(NONE_RUN))
    board = _build(tmp_path / "site", runs=runs)
    normalised = next(t for t in board["tables"] if t["name"] == "normalised")
    assert any(_label(STOCK_RUN) in note and "stock lm-eval" in note
               for note in normalised["notes"])
    stock = _table(board, "normalised")[_label(STOCK_RUN)]
    assert stock["SQuAD F1"]["value"] == pytest.approx(100.0)


def test_zero_shot_is_marked_when_the_target_ignores_the_instruction(tmp_path: Path) -> None:
    scores = {"compressed_squad": {"squad_f1": 0.5}}
    reader = {"compressbench": {"compressor": {"name": "zero_shot", "version": "1"},
                                "target": {"name": "lexical-reader[/m/tok]"},
                                "reader": "lexical extractive reader (non-neural)"}}
    marked = load_run(write_results(tmp_path / "a", "tokenizer=/m/tok", scores,
                                    model="compressed_reader", extra_config=reader)).key
    assert marked.title == "zero_shot (= none for this target)" and marked.label == "zero_shot"
    assert marked.model_label == "lexical reader (tok tokenizer)"
    neural = {"compressbench": {"compressor": {"name": "zero_shot", "version": "1"},
                                "target": {"name": "/m/llama"}}}
    plain = load_run(write_results(tmp_path / "b", "pretrained=/m/llama", scores,
                                   extra_config=neural)).key
    assert plain.title == "zero_shot" and plain.model_label == "llama"


def test_all_zero_rows_are_explained(tmp_path: Path) -> None:
    qa = {"compressed_squad": {"squad_f1": 0.0, "squad_exact_match": 0.0}}
    write_results(tmp_path / "runs" / "dead_none", "pretrained=dead,compressor=none", qa)
    write_results(tmp_path / "runs" / "dead_cut", "pretrained=dead,compressor=truncate,rate=0.5",
                  qa)
    write_results(tmp_path / "runs" / "live", "pretrained=live,compressor=none",
                  {"compressed_squad": {"squad_f1": 0.5, "squad_exact_match": 0.0}})
    board = _build(tmp_path / "site", runs=tmp_path / "runs")
    raw = next(t for t in board["tables"] if t["name"] == "raw")
    notes = {(row[0]["display"], row[1]["display"]): row[-1]["display"] for row in raw["rows"]}
    assert notes[("dead", "none")] == notes[("dead", "truncate (rate=0.5)")] == ALL_ZERO
    assert notes[("live", "none")] == ""
    assert any(note.startswith(f"'{ALL_ZERO}'") for note in raw["notes"])
    normalised = next(t for t in board["tables"] if t["name"] == "normalised")
    assert any(note.startswith("dead: no ratios") for note in normalised["notes"])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("meta-llama/Meta-Llama-3-8B-Instruct", "meta-llama/Meta-Llama-3-8B-Instruct"),
        ("/models/llama3/", "llama3"),
        ("./runs/models/tiny", "tiny"),
        ("~/models/tiny", "tiny"),
        ("tiny-llama", "tiny-llama"),
    ],
)
def test_model_labels_are_hub_ids_or_folder_names(text: str, expected: str) -> None:
    assert model_name(text) == expected
    assert RowKey(text, "none").model_label == expected


@pytest.mark.parametrize(
    ("model", "args", "expected"),
    [
        ("compressed", "pretrained=meta-llama/Meta-Llama-3-8B-Instruct,compressor=llmlingua2,"
         "rate=0.25,compressor_model=/m/llmlingua-2-xlm,device=cuda:0,batch_size=4",
         "Meta-Llama-3-8B-Instruct__llmlingua2_compressor_model=llmlingua-2-xlm_rate=0.25"),
        ("compressed_reader", "tokenizer=tiny,compressor=truncate,rate=0.5,compression_cache=off",
         "lexical-reader-tiny__truncate_rate=0.5"),
        ("compressed", "pretrained=/m/tiny", "tiny__none"),
        ("hf", "pretrained=/m/stories260K,dtype=float32", "stories260K__hf"),
    ],
)
def test_run_folders_are_named_after_model_compressor_and_settings(
    model: str, args: str, expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_folder_name(model, args) == expected
    assert main(["run-folder", "--model", model, "--model_args", args]) == 0
    assert capsys.readouterr().out == expected + "\n"


def test_long_run_folder_names_end_in_a_hash() -> None:
    args = "pretrained=m,compressor=x," + ",".join(f"option{i}=value{i}" for i in range(30))
    name = run_folder_name("compressed", args)
    other = run_folder_name("compressed", args.replace("value29", "value30"))
    assert len(name) <= 120 and name.startswith("m__x_option0=value0") and name != other


def test_sample_viewer_numbers_are_rounded(tmp_path: Path) -> None:
    _build(tmp_path / "site")
    page = (tmp_path / "site" / "index.html").read_text(encoding="utf-8")
    data = page.split('<script type="application/json" id="sample-data">', 1)[1]
    samples = json.loads(data.split("</script>", 1)[0])
    runs = {run.key.title: run for run in read_runs([FIXTURE_RUNS])}
    checked = 0
    for sample in samples:
        row = sample["row"].split(" / ", 1)[1]
        logged = next(s for s in runs[row].tasks[sample["task"]].samples
                      if s["doc_id"] == sample["doc_id"])
        for metric, value in sample["efficiency"].items():
            assert value == float(f"{logged[metric]:.4g}")
            checked += 1
        if sample["score"] is not None:
            assert sample["score"] == float(f"{logged[sample['score_metric']]:.4g}")
    assert checked > 0
