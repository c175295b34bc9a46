"""``check``: the regression gate's exit codes, report, JUnit output and baseline file."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from leaderboard._cli import main
from tests.leaderboard.conftest import FIXTURE_RUNS, fixture_score_count


@pytest.fixture
def baseline(tmp_path: Path) -> Path:
    path = tmp_path / "baseline.json"
    assert main(["check", str(FIXTURE_RUNS), "--baseline", str(path), "--update"]) == 0
    return path


def _shift(
    path: Path, task: str, metric: str, compressor: str, points: float, stderr: float | None = None
) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    hits = [
        e
        for e in data["entries"]
        if (e["task"], e["metric"], e["compressor"]) == (task, metric, compressor)
    ]
    assert len(hits) == 1
    hits[0]["value"] += points / 100
    if stderr is not None:
        hits[0]["stderr"] = stderr
    path.write_text(json.dumps(data), encoding="utf-8")


def test_baseline_file_schema(baseline: Path) -> None:
    data = json.loads(baseline.read_text(encoding="utf-8"))
    assert data["schema"] == "compressbench-leaderboard-baseline" and data["schema_version"] == 1
    entry = next(
        e
        for e in data["entries"]
        if e["task"] == "compressed_squad"
        and e["compressor"] == "truncate"
        and e["metric"] == "squad_f1"
    )
    assert (
        entry["settings"] == {"rate": "0.25"} and entry["task_version"] == "1.0" and entry["n"] == 2
    )
    assert {e["metric"] for e in data["entries"]} == {
        "squad_f1",
        "squad_exact_match",
        "rouge_l_f",
        "bleu",
    }


def test_unchanged_results_pass(baseline: Path, capsys) -> None:
    assert main(["check", str(FIXTURE_RUNS), "--baseline", str(baseline)]) == 0
    assert f"{fixture_score_count()} ok, 0 regression(s)" in capsys.readouterr().out


def test_drop_within_tolerance_passes(baseline: Path) -> None:
    _shift(baseline, "compressed_regeneration_96", "rouge_l_f", "none", 1.5)
    assert main(["check", str(FIXTURE_RUNS), "--baseline", str(baseline), "--tolerance", "2"]) == 0


def test_drop_beyond_tolerance_fails_with_a_table(baseline: Path, tmp_path: Path, capsys) -> None:
    _shift(baseline, "compressed_regeneration_96", "rouge_l_f", "none", 3.0)
    junit = tmp_path / "junit.xml"
    code = main(
        [
            "check",
            str(FIXTURE_RUNS),
            "--baseline",
            str(baseline),
            "--tolerance",
            "2",
            "--junit",
            str(junit),
        ]
    )
    out = capsys.readouterr().out
    assert code == 1
    line = next(line for line in out.splitlines() if "regression" in line and "rouge_l_f" in line)
    assert (
        "stories260K / none" in line and "compressed_regeneration_96" in line and " 3.00 " in line
    )
    suite = ET.parse(junit).getroot()
    assert suite.get("tests") == str(fixture_score_count()) and suite.get("failures") == "1"
    failed = [c for c in suite.iter("testcase") if c.find("failure") is not None]
    assert [c.get("name") for c in failed] == ["compressed_regeneration_96/rouge_l_f"]


def test_stderr_aware_mode_forgives_noise(baseline: Path) -> None:
    # compressed_squad of the none run: F1 0.25 with stderr 0.25 over two questions
    _shift(baseline, "compressed_squad", "squad_f1", "none", 3.0, stderr=0.05)
    args = ["check", str(FIXTURE_RUNS), "--baseline", str(baseline), "--tolerance", "2"]
    assert main(args) == 1
    assert main([*args, "--stderr-aware"]) == 0  # 1.96 * hypot(5, 25) points > 3
    assert main([*args, "--stderr-aware", "--z", "0.1"]) == 1  # 0.1 * 25.5 points < 3


def test_missing_metric_fails_unless_allowed(baseline: Path, tmp_path: Path, capsys) -> None:
    data = json.loads(baseline.read_text(encoding="utf-8"))
    data["entries"].append({**data["entries"][0], "task": "compressed_regeneration_480"})
    baseline.write_text(json.dumps(data), encoding="utf-8")
    assert main(["check", str(FIXTURE_RUNS), "--baseline", str(baseline)]) == 1
    assert "missing" in capsys.readouterr().out
    assert main(["check", str(FIXTURE_RUNS), "--baseline", str(baseline), "--allow-missing"]) == 0


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{", "unreadable baseline"),
        ('{"schema": "other"}', "field 'schema'"),
        (
            '{"schema": "compressbench-leaderboard-baseline", "schema_version": 9, "entries": []}',
            "schema_version 9",
        ),
        (
            '{"schema": "compressbench-leaderboard-baseline", "schema_version": 1,'
            ' "entries": [{"model": 1}]}',
            "entries[0]: field 'model'",
        ),
    ],
)
def test_malformed_baseline_exits_2(tmp_path: Path, capsys, content: str, message: str) -> None:
    path = tmp_path / "baseline.json"
    path.write_text(content, encoding="utf-8")
    assert main(["check", str(FIXTURE_RUNS), "--baseline", str(path)]) == 2
    assert message in capsys.readouterr().err


def test_malformed_results_and_version_change_exit_2(
    baseline: Path, runs_copy: Path, capsys
) -> None:
    (path,) = (runs_copy / "zero_shot").rglob("results_*.json")
    text = path.read_text(encoding="utf-8")
    path.write_text(text[:100], encoding="utf-8")
    assert main(["check", str(runs_copy), "--baseline", str(baseline)]) == 2
    assert "not a readable lm-eval results file" in capsys.readouterr().err
    data = json.loads(text)
    data["versions"]["compressed_race"] = 3.0
    path.write_text(json.dumps(data), encoding="utf-8")
    for other in runs_copy.iterdir():
        if other.name != "zero_shot":
            for file in other.rglob("results_*.json"):
                file.unlink()
    assert main(["check", str(runs_copy), "--baseline", str(baseline), "--allow-missing"]) == 2
    assert "version 3.0 now but 1.0 in the baseline" in capsys.readouterr().err
