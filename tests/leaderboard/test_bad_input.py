"""leaderboard on bad input (one line, exit 2), target_tokens labels, escaped exports."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.substrate.errors import DEBUG_ENV, InputError
from leaderboard import LeaderboardError
from leaderboard._cli import main
from leaderboard._runs import load_run, row_key
from tests.leaderboard._lmeval_files import write_results

from .conftest import FIXTURE_RUNS

REPO = Path(__file__).resolve().parents[2]
SAMPLES_HINT = (
    "write it again with lm_eval --log_samples, or delete it to build without its samples"
)


@pytest.fixture(autouse=True)
def _no_debug(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DEBUG_ENV, raising=False)


@pytest.fixture
def one_run(tmp_path: Path) -> Path:
    target = tmp_path / "runs" / "zero_shot"
    shutil.copytree(FIXTURE_RUNS / "zero_shot", target)
    return target


def _break_line(path: Path, line: int) -> None:
    """Put a 0xff byte into ``line`` (1-based) of ``path``."""
    lines = path.read_bytes().splitlines(keepends=True)
    assert len(lines) >= line
    lines[line - 1] = lines[line - 1].replace(b'"', b'"\xff', 1)
    path.write_bytes(b"".join(lines))


def _fails_with(capsys: pytest.CaptureFixture[str], argv: list[str], out: Path | None) -> str:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert "Traceback" not in captured.err
    if out is not None:
        assert not out.exists() or not any(out.rglob("*")), "a bad input left files behind"
    return captured.err


def test_a_samples_file_that_is_not_utf8_is_named_with_its_line(
        one_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (samples,) = one_run.rglob("samples_compressed_squad_*.jsonl")
    _break_line(samples, 2)
    out = tmp_path / "site"
    err = _fails_with(capsys, ["build", str(one_run.parent), "--out", str(out)], out)
    assert err == f"error: {samples}:2: not UTF-8 (byte 0xff); {SAMPLES_HINT}\n"


def test_a_results_file_that_is_not_utf8_is_named_with_its_line(
        one_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (results,) = one_run.rglob("results_*.json")
    results.write_text(json.dumps(json.loads(results.read_text()), indent=1), encoding="utf-8")
    _break_line(results, 5)
    hint = "run lm_eval again for this results file, or leave its folder out"
    err = _fails_with(capsys, ["check", str(one_run), "--baseline", str(tmp_path / "b.json")],
                      None)
    assert err == f"error: {results}:5: not UTF-8 (byte 0xff); {hint}\n"


@pytest.mark.slow
def test_the_command_exits_2_and_debug_shows_the_traceback(one_run: Path, tmp_path: Path) -> None:
    (samples,) = one_run.rglob("samples_compressed_race_*.jsonl")
    _break_line(samples, 1)
    env = {k: v for k, v in os.environ.items() if k != DEBUG_ENV}
    command = [sys.executable, "-m", "leaderboard", "build", str(one_run), "--out",
               str(tmp_path / "site")]
    plain = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                           timeout=300, check=False)
    assert plain.returncode == 2 and plain.stdout == ""
    assert plain.stderr == f"error: {samples}:1: not UTF-8 (byte 0xff); {SAMPLES_HINT}\n"
    traced = subprocess.run([*command, "--debug"], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=300, check=False)
    assert traced.returncode == 2 and traced.stderr.startswith("Traceback")
    assert "UnicodeDecodeError" in traced.stderr and traced.stderr.endswith(plain.stderr)
    assert not (tmp_path / "site").exists()


def test_target_tokens_labels_drop_the_unused_rate(tmp_path: Path) -> None:
    recorded = {"compressbench": {"compressor": {
        "name": "truncate", "version": "1", "settings": {"rate": 0.5, "target_tokens": 100}}}}
    path = write_results(tmp_path / "a", "pretrained=m,compressor=truncate,target_tokens=100",
                         {"compressed_squad": {"squad_f1": 0.5}}, extra_config=recorded)
    assert load_run(path).key.label == "truncate (target_tokens=100)"
    by_args = row_key({"model_args": "pretrained=m,compressor=truncate,rate=0.5,target_tokens=8"},
                      "", "f")
    assert by_args.label == "truncate (target_tokens=8)"
    by_rate = row_key({"model_args": "pretrained=m,compressor=truncate,rate=0.5,target_tokens="},
                      "", "f")
    assert by_rate.label == "truncate (rate=0.5)"


def test_markdown_and_latex_exports_escape_metadata(runs_copy: Path, tmp_path: Path) -> None:
    hostile = {"zero_shot": "<script>alert(1)</script>",
               "truncate_0.5": "<img src=x onerror=alert(1)>"}
    for run, name in hostile.items():
        (path,) = (runs_copy / run).rglob("results_*.json")
        data = json.loads(path.read_text(encoding="utf-8"))
        data["config"]["model_args"]["compressor"] = name
        path.write_text(json.dumps(data), encoding="utf-8")
    title = "Board [x](javascript:alert(1)) |\n\\input{/etc/passwd}"
    out = tmp_path / "site"
    assert main(["build", str(runs_copy), "--out", str(out), "--title", title]) == 0
    for name in ("leaderboard.md", "raw.md", "efficiency.md"):
        text = (out / name).read_text(encoding="utf-8")
        assert "<script" not in text and "<img" not in text
        assert "&lt;img src=x onerror=alert(1)&gt;" in text
    board = (out / "leaderboard.md").read_text(encoding="utf-8")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in board
    assert board.startswith("# Board \\[x\\](javascript:alert(1)) \\| \\\\input{/etc/passwd}\n")
    for name in ("raw.tex", "efficiency.tex"):
        tex = (out / name).read_text(encoding="utf-8")
        assert "<script" not in tex and "<img" not in tex and "\\input" not in tex
        assert "\\textless{}script\\textgreater{}alert(1)\\textless{}/script\\textgreater{}" in tex


def test_latex_comments_and_cells_cannot_be_broken_out_of() -> None:
    from leaderboard._export import latex_escape, to_latex
    from leaderboard._tables import Cell, Table

    hostile = "x\n\\input{/etc/passwd} <script>"
    assert latex_escape(hostile) == (
        "x \\textbackslash{}input\\{/etc/passwd\\} \\textless{}script\\textgreater{}")
    table = Table(name="t", title=hostile, columns=["Model", "Compressor"],
                  rows=[[Cell(hostile, hostile), Cell(None, "b")]], notes=[])
    lines = to_latex(table).splitlines()
    assert lines[0] == "% " + latex_escape(hostile)
    assert not any(line.startswith("\\input") for line in lines)


def _set_json_token(path: Path, keys: tuple[str, ...], token: str, line: int = 1) -> None:
    """Set ``keys`` of the JSON record on ``line`` of ``path`` to the raw JSON ``token``."""
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    record = json.loads(lines[line - 1])
    inner = record
    for key in keys[:-1]:
        inner = inner[key]
    inner[keys[-1]] = "PLACEHOLDER"
    lines[line - 1] = json.dumps(record).replace('"PLACEHOLDER"', token) + "\n"
    path.write_text("".join(lines), encoding="utf-8")


def _build_args(run: Path, out: Path) -> list[str]:
    """``build`` of the one run (zero_shot), which is then its own baseline."""
    return ["build", str(run), "--out", str(out), "--normalise-to", "zero_shot",
            "--baseline-compressor", "zero_shot"]


@pytest.mark.parametrize("token", ["Infinity", "-Infinity", "NaN", "1e999",
                                   pytest.param("1" + "0" * 400, id="integer-1e400")])
def test_a_score_that_is_not_a_finite_number_is_refused(
        one_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], token: str) -> None:
    (results,) = one_run.rglob("results_*.json")
    _set_json_token(results, ("results", "compressed_squad", "squad_f1,none"), token)
    out = tmp_path / "site"
    err = _fails_with(capsys, _build_args(one_run, out), out)
    assert err == (f"error: {results}: results.compressed_squad: field 'squad_f1,none': not a "
                   "finite number (NaN, Infinity or too large for a float)\n")


def test_a_limit_that_is_not_a_finite_number_is_refused(
        one_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (results,) = one_run.rglob("results_*.json")
    _set_json_token(results, ("config", "limit"), "Infinity")
    out = tmp_path / "site"
    err = _fails_with(capsys, _build_args(one_run, out), out)
    assert err.startswith(f"error: {results}: field 'config.limit': not a finite number")


@pytest.mark.parametrize("token", ["Infinity", "NaN",
                                   pytest.param("1" + "0" * 400, id="integer-1e400")])
def test_a_sample_number_that_is_not_finite_is_refused_with_its_line(
        one_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], token: str) -> None:
    (samples,) = one_run.rglob("samples_compressed_squad_*.jsonl")
    _set_json_token(samples, ("compress_seconds",), token, line=2)
    out = tmp_path / "site"
    err = _fails_with(capsys, _build_args(one_run, out), out)
    assert err == (f"error: {samples}:2: field 'compress_seconds': not a finite number (NaN, "
                   f"Infinity or too large for a float); {SAMPLES_HINT}\n")


def test_a_score_too_large_to_compute_with_is_refused(
        one_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (results,) = one_run.rglob("results_*.json")
    _set_json_token(results, ("results", "compressed_squad", "squad_f1,none"), "1e307")
    out = tmp_path / "site"
    err = _fails_with(capsys, _build_args(one_run, out), out)
    assert err.startswith("error: table 'raw', row 'stories260K / zero_shot', column 'SQuAD F1': "
                          "inf is not a finite number")


def test_leaderboard_errors_are_located_like_every_input_error() -> None:
    error = LeaderboardError("not a number", "runs/results.json", 3, field="acc",
                             hint="fix the file")
    assert isinstance(error, InputError)
    assert str(error) == "runs/results.json:3: field 'acc': not a number; fix the file"
