"""Smoke test of the snapshot-reader benchmark script on a few hundred records."""

from __future__ import annotations

import importlib.util

import pytest

from tests.data_builders.conftest import REPO


def test_benchmark_script_runs(capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location(
        "bench_snapshot_reader", REPO / "benchmarks" / "bench_snapshot_reader.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(["--records", "300"])
    lines = capsys.readouterr().out.splitlines()
    rows = [line.split() for line in lines[1:7]]
    assert [(r[0], r[-5]) for r in rows].count(("snapshot.json.gz", "300")) == 3
    assert all(r[-5] == "300" for r in rows)
