"""The results record: written and read through the same types, versioned, checked by field."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bench.harness.answering import model_info
from bench.results_record import (
    SCHEMA_VERSION,
    CacheRecord,
    CompressorRecord,
    RunInfo,
    SampleRecord,
    TargetRecord,
    parse_run_info,
    read_measurements,
)
from bench.substrate.errors import InputError

RESULTS = "runs/results_2026-01-01.json"
FULL = RunInfo(
    compressor=CompressorRecord("truncate", "1", {"rate": 0.25, "target_tokens": None},
                                family="hard", question_aware=False,
                                budget_options=("rate", "target_tokens")),
    target=TargetRecord("/models/llama", {"parameters": 1000, "layers": 2, "hidden": 64}),
    harness_version="1",
    compressed_bits_of_text="llmzip",
    compressions=27,
    contexts_cut_to_window=0,
    compression_cache=CacheRecord("/cache", 3, 24),
    peak_rss_mb=633.96484375,
    peak_cuda_mb=None,
    per_task={"compressed_squad": {"samples": 9.0, "compression_ratio_mean": 0.25}},
    target_tokens_exceed_context={"compressed_squad": 2},
    served={"api": "completions", "calls": 3.0},
)


def _written(info: RunInfo) -> dict[str, Any]:
    """The config section a results file holds for ``info``, as lm-eval writes and reads it."""
    loaded: dict[str, Any] = json.loads(json.dumps({"model": "compressed", **model_info(info)}))
    return loaded


def _record(**fields: Any) -> dict[str, Any]:
    data = _written(FULL)
    data["compressbench"].update(fields)
    return data


def test_the_run_record_round_trips_through_a_results_file():
    config = _written(FULL)
    assert config["compressbench"]["schema_version"] == SCHEMA_VERSION
    assert parse_run_info(config, RESULTS) == FULL
    reader = RunInfo(CompressorRecord("none", "1", {}), reader="lexical extractive reader")
    assert parse_run_info(_written(reader), RESULTS) == reader


def test_the_sample_record_round_trips_through_a_logged_sample():
    record = SampleRecord(0.5, 10, 5, 0.1, 0.2, 0.05, 3, 100.0, 0.4, compressed_bits=40.0,
                          requested_rate=0.5)
    logged = json.loads(json.dumps({"doc_id": 0, "squad_f1": 1.0, **record.metrics()}))
    assert read_measurements(logged, "samples.jsonl", 1) == record.metrics()
    assert read_measurements(logged, "samples.jsonl", 1)["bits_per_token"] == 4.0


def test_an_unknown_major_version_is_refused_in_one_line():
    with pytest.raises(InputError) as refused:
        parse_run_info(_record(schema_version="2.0"), RESULTS)
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith(f"{RESULTS}: field 'config.compressbench.schema_version': "
                              "results schema 2.0 is not supported (this compressbench "
                              "reads 1.x)")


def test_other_minor_versions_and_an_unversioned_record_are_read_as_version_1():
    older = parse_run_info(_record(schema_version="1.0", added_later={"x": 1}), RESULTS)
    assert older is not None and older.compressor == FULL.compressor
    unversioned = _record()
    del unversioned["compressbench"]["schema_version"]
    read = parse_run_info(unversioned, RESULTS)
    assert read is not None and read.schema_version == "1.0" and read.target == FULL.target
    assert parse_run_info({"model": "hf"}, RESULTS) is None


@pytest.mark.parametrize(("fields", "field", "problem"), [
    ({"schema_version": "one"}, "config.compressbench.schema_version",
     "'one' is not a MAJOR.MINOR version"),
    ({"compressor": {"name": 3, "version": "1"}}, "config.compressbench.compressor.name",
     "must be a string, got 3"),
    ({"compressor": {"version": "1"}}, "config.compressbench.compressor.name", "missing"),
    ({"target": {"name": "m", "shape": {"layers": 2.5}}},
     "config.compressbench.target.shape.layers", "must be a whole number >= 0, got 2.5"),
    ({"per_task": {"compressed_squad": {"samples": "nine"}}},
     "config.compressbench.per_task.compressed_squad.samples", "must be a number, got 'nine'"),
    ({"compression_cache": {"path": "/c", "hits": -1, "misses": 0}},
     "config.compressbench.compression_cache.hits", "must be a whole number >= 0, got -1"),
    ({"peak_rss_mb": True}, "config.compressbench.peak_rss_mb", "must be a number, got True"),
])
def test_a_malformed_field_is_named(fields: dict[str, Any], field: str, problem: str):
    with pytest.raises(InputError) as refused:
        parse_run_info(_record(**fields), RESULTS)
    assert str(refused.value).startswith(f"{RESULTS}: field {field!r}: {problem}; ")
    assert refused.value.field == field


def test_a_record_that_is_not_an_object_is_named():
    with pytest.raises(InputError, match=r"field 'config\.compressbench': must be an object"):
        parse_run_info({"compressbench": ["truncate"]}, RESULTS)


def test_a_malformed_measurement_names_its_line_and_field():
    with pytest.raises(InputError) as refused:
        read_measurements({"compression_ratio": "fast"}, "samples.jsonl", 7)
    assert str(refused.value).startswith(
        "samples.jsonl:7: field 'compression_ratio': must be a number, got 'fast'")
