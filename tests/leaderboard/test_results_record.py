"""The leaderboard reads the harness's results record through its types, and refuses one it
cannot read in one line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bench.harness.answering import model_info
from bench.results_record import CompressorRecord, RunInfo, TargetRecord
from bench.substrate.errors import DEBUG_ENV
from leaderboard._cli import main
from leaderboard._runs import load_run
from tests.leaderboard._lmeval_files import write_results
from tests.leaderboard.conftest import FIXTURE_RUNS

SAMPLES_HINT = (
    "write it again with lm_eval --log_samples, or delete it to build without its samples"
)


@pytest.fixture
def one_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv(DEBUG_ENV, raising=False)
    target = tmp_path / "runs" / "truncate_0.5"
    shutil.copytree(FIXTURE_RUNS / "truncate_0.5", target)
    return target


def _refused(capsys: pytest.CaptureFixture[str], run: Path, out: Path) -> str:
    # the run is its own baseline: the record, and nothing else, makes the build fail
    assert main(["build", str(run), "--out", str(out), "--normalise-to", "truncate",
                 "--baseline-compressor", "truncate"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert not out.exists() or not any(out.rglob("*"))
    return captured.err


def test_the_harness_record_names_the_row(tmp_path: Path) -> None:
    info = RunInfo(CompressorRecord("truncate", "2", {"rate": 0.25, "target_tokens": None}),
                   TargetRecord("/models/llama3"), harness_version="1")
    path = write_results(tmp_path, "pretrained=/elsewhere/llama3,compressor=truncate,rate=0.9",
                         {"compressed_squad": {"squad_f1": 0.5}},
                         extra_config=model_info(info))
    key = load_run(path).key
    assert (key.model, key.compressor, key.settings, key.version) == (
        "/models/llama3", "truncate", (("rate", "0.25"),), "2")


def test_a_record_of_an_unknown_major_version_is_refused_in_one_line(
        one_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (results,) = one_run.rglob("results_*.json")
    data = json.loads(results.read_text(encoding="utf-8"))
    data["config"]["compressbench"] = {"schema_version": "2.0",
                                       "compressor": {"name": "truncate", "version": "1"}}
    results.write_text(json.dumps(data), encoding="utf-8")
    err = _refused(capsys, one_run, tmp_path / "site")
    assert err.startswith(f"error: {results}: field 'config.compressbench.schema_version': "
                          "results schema 2.0 is not supported (this compressbench reads 1.x)")


def test_a_measurement_that_is_not_a_number_is_named_with_its_line(
        one_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (samples,) = one_run.rglob("samples_compressed_squad_*.jsonl")
    lines = samples.read_text(encoding="utf-8").splitlines(keepends=True)
    second = json.loads(lines[1])
    second["compression_ratio"] = "half"
    lines[1] = json.dumps(second) + "\n"
    samples.write_text("".join(lines), encoding="utf-8")
    err = _refused(capsys, one_run, tmp_path / "site")
    assert err == (f"error: {samples}:2: field 'compression_ratio': must be a number, got "
                   f"'half'; {SAMPLES_HINT}\n")
