"""``leaderboard check`` cannot be made to pass by NaN, Inf or an empty baseline.

A verdict is only worth something if no value in a file it reads (or an option) can turn a
regression into a pass: every such value is refused as bad input (exit 2, one line naming the
file and field, or the option), and so is a baseline that checks nothing.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from bench.substrate.errors import DEBUG_ENV
from leaderboard._cli import main
from tests.leaderboard.conftest import FIXTURE_RUNS

REGRESSED = ("compressed_squad", "squad_f1", "none")  # (task, metric, compressor)
NONE_RUN = "instruct"  # the fixture run of compressor none


@pytest.fixture(autouse=True)
def _no_debug(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DEBUG_ENV, raising=False)


@pytest.fixture
def baseline(tmp_path: Path) -> Path:
    """A baseline of the fixture runs in which one metric was 30 points higher: a regression
    that ``check`` must report whatever else the files or options say."""
    path = tmp_path / "baseline.json"
    assert main(["check", str(FIXTURE_RUNS), "--baseline", str(path), "--update"]) == 0
    data = _read(path)
    data["entries"][_index(data, *REGRESSED)]["value"] += 0.30
    _write(path, data)
    assert main(["check", str(FIXTURE_RUNS), "--baseline", str(path)]) == 1
    return path


@pytest.fixture
def runs_copy(tmp_path: Path) -> Path:
    target = tmp_path / "runs"
    shutil.copytree(FIXTURE_RUNS, target)
    return target


def _read(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _write(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data), encoding="utf-8")


def _index(data: dict[str, Any], task: str, metric: str, compressor: str) -> int:
    (index,) = [
        i for i, e in enumerate(data["entries"])
        if (e["task"], e["metric"], e["compressor"]) == (task, metric, compressor)
    ]
    return index


def _check(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()  # what the fixtures printed
    code = main(["check", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _refused(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """Run ``check``; it must end in one line on stderr and exit 2."""
    code, out, err = _check(capsys, *args)
    assert (code, out) == (2, ""), (code, out, err)
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err
    return err


@pytest.mark.parametrize("value", ["nan", "inf", "-1"])
def test_a_tolerance_that_is_not_a_finite_count_of_points_is_refused(
    baseline: Path, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    err = _refused(capsys, str(FIXTURE_RUNS), "--baseline", str(baseline), "--tolerance", value)
    assert err.startswith(f"error: --tolerance {value}: ")


@pytest.mark.parametrize("value", ["nan", "inf", "0", "-2"])
def test_a_z_that_is_not_finite_and_positive_is_refused(
    baseline: Path, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    err = _refused(capsys, str(FIXTURE_RUNS), "--baseline", str(baseline), "--stderr-aware",
                   "--z", value)
    assert err.startswith(f"error: --z {value}: ")


@pytest.mark.parametrize(("field", "text"), [
    ("value", "NaN"),
    ("value", "Infinity"),
    ("value", "-Infinity"),
    ("value", "1e999"),
    pytest.param("value", "1" + "0" * 400, id="value-integer-1e400"),
    ("stderr", "NaN"),
    ("stderr", "Infinity"),
    ("stderr", "-0.5"),
    ("n", "-3"),
])
def test_a_baseline_number_that_is_not_finite_or_is_negative_is_refused(
    baseline: Path, capsys: pytest.CaptureFixture[str], field: str, text: str
) -> None:
    data = _read(baseline)
    index = _index(data, *REGRESSED)
    data["entries"][index][field] = "PLACEHOLDER"
    raw = json.dumps(data).replace('"PLACEHOLDER"', text)
    baseline.write_text(raw, encoding="utf-8")
    err = _refused(capsys, str(FIXTURE_RUNS), "--baseline", str(baseline), "--stderr-aware")
    assert err.startswith(f"error: {baseline}: entries[{index}]: field {field!r}: "), err


def _tamper_results(runs: Path, field: str, text: str) -> Path:
    """Set ``results.compressed_squad.<field>`` of the none run to the JSON token ``text``."""
    (path,) = (runs / NONE_RUN).rglob("results_*.json")
    data = _read(path)
    data["results"]["compressed_squad"][field] = "PLACEHOLDER"
    path.write_text(json.dumps(data).replace('"PLACEHOLDER"', text), encoding="utf-8")
    return path


@pytest.mark.parametrize(("field", "text"), [
    ("squad_f1,none", "NaN"),
    ("squad_f1,none", "Infinity"),
    ("squad_f1,none", "-Infinity"),
    ("squad_f1,none", "1e999"),
    pytest.param("squad_f1,none", "1" + "0" * 400, id="squad_f1,none-integer-1e400"),
    ("squad_f1_stderr,none", "NaN"),
    ("squad_f1_stderr,none", "Infinity"),
    ("squad_f1_stderr,none", "-0.5"),
])
@pytest.mark.parametrize("options", [(), ("--allow-missing",), ("--stderr-aware",)])
def test_a_run_number_that_is_not_finite_is_refused(
    baseline: Path, runs_copy: Path, capsys: pytest.CaptureFixture[str],
    field: str, text: str, options: tuple[str, ...],
) -> None:
    path = _tamper_results(runs_copy, field, text)
    err = _refused(capsys, str(runs_copy), "--baseline", str(baseline), *options)
    assert err.startswith(f"error: {path}: results.compressed_squad: field {field!r}: "), err


def test_a_baseline_without_entries_checks_nothing_and_is_refused(
    baseline: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _read(baseline)
    data["entries"] = []
    _write(baseline, data)
    err = _refused(capsys, str(FIXTURE_RUNS), "--baseline", str(baseline))
    assert err.startswith(f"error: {baseline}: field 'entries': ")
