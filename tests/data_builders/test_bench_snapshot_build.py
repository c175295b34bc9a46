"""Smoke test of the snapshot-build benchmark on a small synthetic snapshot."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

from tests.data_builders.conftest import REPO


def _module() -> Any:
    spec = importlib.util.spec_from_file_location(
        "bench_snapshot_build", REPO / "benchmarks" / "bench_snapshot_build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_synthetic_snapshot_repeats_papers(tmp_path: Path) -> None:
    module = _module()
    path = tmp_path / "snapshot.json"
    module.write_snapshot(path, 3000)
    records = [json.loads(line) for line in path.read_text().splitlines()]
    ids = [record["id"] for record in records]
    abstracts = [record["abstract"] for record in records]
    assert len(records) == 3000
    assert len(set(ids)) < len(ids) and len(set(abstracts)) < len(abstracts)
    again = tmp_path / "again.json"
    module.write_snapshot(again, 3000)
    assert again.read_bytes() == path.read_bytes()


def test_benchmark_builds_and_reports_each_size(
        tmp_path: Path, tiny_tokenizer: str, capsys: pytest.CaptureFixture[str]) -> None:
    module = _module()
    module.main(["--sizes", "2000", "--tokenizer", tiny_tokenizer,
                 "--work-dir", str(tmp_path)])
    lines = capsys.readouterr().out.splitlines()
    [row] = [line.split() for line in lines if line.split()[0] == "2000"]
    assert len(row) == 6 and row[5].isdigit()
    assert [float(value) for value in row[1:5]]
    assert not list(tmp_path.iterdir())
