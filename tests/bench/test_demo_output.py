"""The demo says where its model, data, runs and page are, and how many samples it scored."""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from bench import specs
from bench.__main__ import main
from bench.demo import describe_counts, describe_outputs


def test_prepare_only_prints_the_model_and_the_real_counts_and_runs_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    assert main(["demo", "--out", str(tmp_path), "--prepare-only"]) == 0
    out = capsys.readouterr().out
    model = re.search(r"^\[demo\] model: (.+)$", out, re.M)
    data = re.search(r"^\[demo\] data: (\S+)", out, re.M)
    assert model is not None and data is not None, out
    assert (Path(model.group(1)) / "config.json").is_file()
    for benchmark in (spec.name for spec in specs.benchmarks("qa")):
        rows = pq.read_table(Path(data.group(1)) / benchmark / "test.parquet").num_rows
        assert f"{benchmark} {rows} questions" in out
    texts = pq.read_table(Path(data.group(1)) / "regeneration" / "test.parquet").num_rows
    assert f"regeneration {texts} texts" in out
    assert not (tmp_path / "runs").exists()


def test_run_counts_come_from_lm_evals_effective_samples():
    results: dict[str, object] = {"n-samples": {"compressed_squad": {"original": 9, "effective": 4},
                             "compressed_race": {"original": 9, "effective": 9},
                             "compressed_regeneration_96": {"original": 12, "effective": 1}}}
    assert describe_counts(results) == "13 questions (2 QA tasks), 1 regeneration text"
    assert describe_counts({}) == "no samples"


def test_the_closing_lines_name_the_runs_and_the_page(tmp_path: Path):
    lines = describe_outputs(tmp_path, skip_neural=True).splitlines()
    assert lines[0].startswith(f"[demo] runs: {tmp_path / 'runs'} ")
    assert lines[1].startswith(f"[demo] page: {tmp_path / 'leaderboard' / 'index.html'} ")
    assert not any("tiny-llama" in line for line in lines)
    assert any("one compressor per family" in line
               for line in describe_outputs(tmp_path, False).splitlines())
