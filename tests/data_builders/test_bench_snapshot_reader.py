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
    module.main(["--records", "300", "--rounds", "1"])
    lines = capsys.readouterr().out.splitlines()
    files = ("snapshot.json", "snapshot.json.gz")
    rows = [line.split() for line in lines if line.split()[0] in files]
    measured = [(r[0], " ".join(r[1:-3]), r[-3]) for r in rows if "rate," not in r]
    assert measured == [(name, method, "300") for name in files for method in module.METHODS]
    shares = [line for line in lines if "of the json.loads rate" in line]
    assert [line.split()[0] for line in shares] == list(files)
