"""``build`` on run folders written by the real lm-eval CLI (see fixtures/README.md)."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any

import pytest

from leaderboard import LeaderboardError, load_run, parse_model_args, read_runs
from leaderboard._cli import main
from tests.leaderboard.conftest import FIXTURE_RUNS

ROWS = {"none", "zero_shot", "truncate (rate=0.5)", "truncate (rate=0.25)", "hf (stock lm-eval)"}


def _results(run: str) -> dict[str, Any]:
    (path,) = (FIXTURE_RUNS / run).rglob("results_*.json")
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    assert main(["build", str(FIXTURE_RUNS), "--out", str(out), "--title", "Fixture <board>"]) == 0
    return out


def _csv(site: Path, name: str) -> dict[str, dict[str, str]]:
    with (site / f"{name}.csv").open(encoding="utf-8") as handle:
        return {row["Compressor"]: row for row in csv.DictReader(handle)}


def test_writes_every_export(site: Path) -> None:
    for name in ("raw", "normalised", "delta", "efficiency"):
        for ext in ("csv", "tex", "md"):
            assert (site / f"{name}.{ext}").stat().st_size > 0
    board = (site / "leaderboard.md").read_text(encoding="utf-8")
    assert board.startswith("# Fixture &lt;board&gt;")
    data = json.loads((site / "leaderboard.json").read_text(encoding="utf-8"))
    assert data["schema_version"] == 1
    assert len(data["runs"]) == len(list(FIXTURE_RUNS.rglob("results_*.json")))
    assert data["task_versions"]["compressed_squad"] == "1.0"
    assert "\\begin{tabular}" in (site / "raw.tex").read_text(encoding="utf-8")


def test_raw_table_holds_the_lm_eval_numbers(site: Path) -> None:
    raw = _csv(site, "raw")
    assert set(raw) == ROWS
    for run, label in (("instruct", "none"), ("truncate_0.25", "truncate (rate=0.25)")):
        results = _results(run)["results"]
        row = raw[label]
        assert float(row["SQuAD F1"]) == pytest.approx(
            results["compressed_squad"]["squad_f1,none"] * 100
        )
        assert float(row["RACE EM"]) == pytest.approx(
            results["compressed_race"]["squad_exact_match,none"] * 100
        )
        assert float(row["Rouge-L-F 96"]) == pytest.approx(
            results["compressed_regeneration_96"]["rouge_l_f,none"] * 100
        )
        f1 = [
            results[f"compressed_{b}"]["squad_f1,none"] * 100
            for b in ("arxivqa", "squad", "relation_extraction", "hotpotqa", "race")
        ]
        assert float(row["Avg F1"]) == pytest.approx(sum(f1) / 5)
    assert "Rouge-L-F 288" not in next(iter(raw.values()))  # lengths not run are not shown


def test_delta_and_efficiency_tables(site: Path) -> None:
    raw, delta = _csv(site, "raw"), _csv(site, "delta")
    for label in ROWS:
        assert float(delta[label]["BLEU 192"]) == pytest.approx(
            float(raw[label]["BLEU 192"]) - float(raw["none"]["BLEU 192"])
        )
    efficiency = _csv(site, "efficiency")
    assert float(efficiency["none"]["rate (compressed/original)"]) == pytest.approx(1.0)
    # truncate keeps ceil(rate * n) tokens of every context: the achieved rate is just above
    assert 0.25 <= float(efficiency["truncate (rate=0.25)"]["rate (compressed/original)"]) < 0.3
    assert 0.5 <= float(efficiency["truncate (rate=0.5)"]["rate (compressed/original)"]) < 0.55
    assert float(efficiency["truncate (rate=0.5)"]["compressed tokens"]) < float(
        efficiency["none"]["compressed tokens"]
    )


def test_normalised_table_uses_the_same_models_none_row(site: Path) -> None:
    normalised = _csv(site, "normalised")
    raw = _csv(site, "raw")
    assert float(normalised["none"]["SQuAD F1"]) == pytest.approx(100.0)
    expected = float(raw["zero_shot"]["SQuAD F1"]) / float(raw["none"]["SQuAD F1"]) * 100
    assert float(normalised["zero_shot"]["SQuAD F1"]) == pytest.approx(expected)
    assert normalised["none"]["ArxivQA F1"] == ""  # zero baseline score: no ratio


def test_page_is_self_contained_and_escaped(site: Path) -> None:
    page = (site / "index.html").read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "<title>Fixture &lt;board&gt;</title>" in page
    names = [table["name"] for table in json.loads(
        (site / "leaderboard.json").read_text(encoding="utf-8"))["tables"]]
    assert re.findall(r'class="sortable" id="table-([a-z]+)"', page) == ["summary", *names]
    charts = re.findall(r'<svg [^>]*id="plot-([a-z_\-]+)" class="chart"', page)
    assert page.count("<svg ") == len(charts) and "<img " not in page and "data:image" not in page
    assert set(re.findall(r' href="([^"]*)"', page)) == set(
        re.findall(r' href="(#[a-z_\-]+-[0-9]+)"', page))  # within the page only
    # per benchmark the fixtures ran, and their mean, a panel; score vs length; their legends
    assert charts == ["rate-qa", "rate-arxivqa", "rate-squad", "rate-relation_extraction",
                      "rate-hotpotqa", "rate-race", "rate-regeneration", "score_vs_length"]
    assert re.findall(r'<ul class="legend" id="([a-z_\-]+)"', page) == [
        "legend-rate", "legend-score_vs_length"]
    data = page.split('<script type="application/json" id="sample-data">', 1)[1].split(
        "</script>", 1
    )[0]
    assert "<" not in data and "\\u003cscript\\u003e" in data
    samples = json.loads(data)
    assert {s["task"] for s in samples} >= {"compressed_squad", "compressed_regeneration_192"}
    squad = [s for s in samples if s["task"] == "compressed_squad" and s["row"].endswith("/ none")]
    assert squad[0]["question"] == "What was the name of the little girl?"
    assert squad[0]["gold"] == "Lily" and squad[0]["score_metric"] == "squad_f1"


def test_hostile_labels_are_escaped(runs_copy: Path, tmp_path: Path) -> None:
    (path,) = (runs_copy / "zero_shot").rglob("results_*.json")
    data = json.loads(path.read_text(encoding="utf-8"))
    data["config"]["model_args"]["compressor"] = "<img src=x onerror=alert(1)>"
    path.write_text(json.dumps(data), encoding="utf-8")
    assert main(["build", str(runs_copy), "--out", str(tmp_path / "out")]) == 0
    page = (tmp_path / "out" / "index.html").read_text(encoding="utf-8")
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "\\textless{}img" in (tmp_path / "out" / "raw.tex").read_text(encoding="utf-8")


def test_mixed_task_versions_are_refused_naming_the_runs(runs_copy: Path, capsys) -> None:
    (path,) = (runs_copy / "truncate_0.5").rglob("results_*.json")
    data = json.loads(path.read_text(encoding="utf-8"))
    data["versions"]["compressed_squad"] = 2.0
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(LeaderboardError, match="compressed_squad") as error:
        read_runs([runs_copy])
    assert str(path) in str(error.value) and "instruct" in str(error.value)
    assert main(["build", str(runs_copy), "--out", str(runs_copy / "out")]) == 2
    assert "refusing to mix task versions" in capsys.readouterr().err


def test_samples_are_matched_by_date_suffix(runs_copy: Path) -> None:
    (path,) = (runs_copy / "instruct").rglob("results_*.json")
    date = path.name[len("results_") : -len(".json")]
    # a task whose name extends another one's, and an older run's file, must not be picked up
    (path.parent / f"samples_compressed_squad_v2_{date}.jsonl").write_text('{"doc_id": 99}\n')
    (path.parent / "samples_compressed_squad_2000-01-01T00-00-00.0.jsonl").write_text(
        '{"doc_id": 98}\n'
    )
    run = load_run(path)
    assert [s["doc_id"] for s in run.tasks["compressed_squad"].samples] == [0, 1]
    broken = path.parent / f"samples_compressed_race_{date}.jsonl"
    broken.write_text(broken.read_text(encoding="utf-8") + "{not json\n", encoding="utf-8")
    with pytest.raises(
        LeaderboardError, match=r"samples_compressed_race_.*\.jsonl:3: invalid JSON"
    ):
        load_run(path)


def test_row_identity_from_model_args_and_model_info(tmp_path: Path) -> None:
    assert parse_model_args("pretrained=m,compressor=500x,num_mem=4", "f") == {
        "pretrained": "m",
        "compressor": "500x",
        "num_mem": "4",
    }
    assert parse_model_args({"pretrained": "m", "rate": 0.25}, "f") == {
        "pretrained": "m",
        "rate": "0.25",
    }
    with pytest.raises(LeaderboardError, match="not key=value"):
        parse_model_args("pretrained", "f")
    from tests.leaderboard._lmeval_files import write_results

    info = {
        "compressbench": {
            "compressor": {"name": "500x", "version": "1", "settings": {"num_mem": 4}},
            "target": {"name": "/models/llama3"},
        }
    }
    path = write_results(
        tmp_path,
        "pretrained=/models/llama3,compressor=500x,checkpoint=/c/x,batch_size=2",
        {"compressed_squad": {"squad_f1": 0.5}},
        extra_config=info,
    )
    key = load_run(path).key
    assert (key.model, key.compressor, key.settings, key.version) == (
        "/models/llama3",
        "500x",
        (("num_mem", "4"),),
        "1",
    )
    assert key.label == "500x (num_mem=4)" and key.model_label == "llama3"
    plain = write_results(
        tmp_path / "b",
        "pretrained=gpt,device=cpu",
        {"compressed_squad": {"squad_f1": 0.5}},
        model="hf",
    )
    stock = load_run(plain).key
    assert stock.label == "hf (stock lm-eval)" and stock.stock and stock.compressor == "hf"


def test_unusable_input_exits_2(tmp_path: Path, capsys) -> None:
    assert main(["build", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "no results_*.json" in capsys.readouterr().err
    (tmp_path / "results_x.json").write_text("[1, 2]")
    assert main(["build", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "results_x.json: field 'results' missing" in capsys.readouterr().err
