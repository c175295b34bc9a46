"""A benchmark and a metric declared once reach prepare, the task files, the sample records
and the leaderboard."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bench import specs
from bench.harness import sample_log
from bench.lmeval import task_functions
from bench.lmeval.task_files import task_files
from bench.lmeval.task_list import read_tasks
from bench.prepare.cli import _parser as prepare_parser
from bench.results_record import SampleRecord
from leaderboard import BuildOptions, make_tables, read_runs
from tests.leaderboard._lmeval_files import write_results

TOY_BENCHMARK = specs.BenchmarkSpec(name="toyqa", task="compressed_toyqa", title="ToyQA",
                                    kind="qa")
TOY_METRIC = specs.MetricSpec(name="kv_bytes", title="KV bytes", kind="efficiency",
                              higher_is_better=False)


@dataclass(frozen=True)
class MeasuredRecord(SampleRecord):
    """A sample record that also carries the throw-away measurement."""

    kv_bytes: float | None = None


@pytest.fixture
def toy_specs() -> Iterator[None]:
    with specs.temporary_registry():
        specs.register(TOY_BENCHMARK)
        specs.register(TOY_METRIC)
        yield


def _toy_runs(folder: Path) -> Path:
    scores = {"compressed_toyqa": {"squad_f1": 0.5, "squad_exact_match": 0.25,
                                   "kv_bytes": 2048.0}}
    write_results(folder / "toy", "pretrained=m,compressor=none", scores)
    return folder


def test_prepare_offers_the_declared_benchmark(toy_specs: None):
    choices = next(action.choices for action in prepare_parser()._actions
                   if action.dest == "benchmark")
    assert choices is not None and "toyqa" in choices


def test_the_task_files_hold_the_declared_benchmark_and_metric(toy_specs: None):
    files = task_files()
    toy = files["compressed_toyqa.yaml"]
    assert "task: compressed_toyqa\n" in toy and "  benchmark: toyqa\n" in toy
    assert "  - compressed_toyqa\n" in files["compressed_qa.yaml"]
    for name, text in files.items():
        if "\ntag: compressbench\n" in text:
            assert "  - metric: kv_bytes\n    aggregation: mean\n    higher_is_better: false\n" \
                in text, name
    assert "compressed_toyqa" in {entry.name for entry in read_tasks()}


def test_the_sample_record_carries_the_declared_metric(toy_specs: None):
    record = MeasuredRecord(0.5, 10, 5, 0.1, 0.2, 0.05, 3, 100.0, 0.4, kv_bytes=2048.0)
    doc = {"qid": "q1", "context": "some context", "answers": ["x"]}
    sample_log.file_record(doc, record)
    try:
        scores = task_functions.process_qa(doc, ["x"])
    finally:
        sample_log.clear()
    assert scores["kv_bytes"] == 2048.0


def test_a_record_value_without_a_declaration_is_not_a_metric():
    record = MeasuredRecord(0.5, 10, 5, 0.1, 0.2, 0.05, 3, 100.0, 0.4, kv_bytes=2048.0)
    assert "kv_bytes" not in record.metrics()
    assert "compression_cached" not in record.metrics()


def test_the_leaderboard_shows_the_declared_benchmark_and_metric(toy_specs: None,
                                                                  tmp_path: Path):
    tables = {t.name: t for t in make_tables(read_runs([_toy_runs(tmp_path)]),
                                             BuildOptions(out=tmp_path / "board"))}
    assert {"ToyQA F1", "ToyQA EM"} <= set(tables["raw"].columns)
    assert "KV bytes" in tables["efficiency"].columns


def test_the_temporary_registry_is_forgotten_on_leaving():
    with specs.temporary_registry():
        specs.register(TOY_BENCHMARK)
        assert specs.benchmark("toyqa") == TOY_BENCHMARK
    assert "toyqa" not in {spec.name for spec in specs.benchmarks()}
    assert "compressed_toyqa.yaml" not in task_files()


@pytest.mark.parametrize("spec", [
    specs.BenchmarkSpec(name="squad", task="compressed_other", title="Other", kind="qa"),
    specs.BenchmarkSpec(name="other", task="compressed_squad", title="Other", kind="qa"),
    specs.BenchmarkSpec(name="other", task="compressed_qa", title="Other", kind="qa"),
    specs.MetricSpec(name="squad_f1", title="F1 again", kind="qa", higher_is_better=True,
                     style="squad"),
])
def test_a_second_declaration_of_a_name_is_refused(spec: specs.BenchmarkSpec | specs.MetricSpec):
    with specs.temporary_registry(), pytest.raises(ValueError, match="already declared"):
        specs.register(spec)


def test_a_score_metric_names_its_style():
    with pytest.raises(ValueError, match="style"):
        specs.MetricSpec(name="x", title="X", kind="qa", higher_is_better=True)
