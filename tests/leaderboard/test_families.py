"""Rows take their family and budget options from what the compressor declared."""

from __future__ import annotations

from typing import Any

from bench.compressors import Family
from bench.harness.answering import model_info
from bench.results_record import CompressorRecord, RunInfo
from leaderboard._families import curve_key, family
from leaderboard._runs import row_key


def _config(record: CompressorRecord) -> dict[str, Any]:
    return {"model": "compressed", "model_args": "pretrained=m",
            **model_info(RunInfo(record))}


def test_the_recorded_family_and_budget_options_place_the_row() -> None:
    rows = [row_key(_config(CompressorRecord(
        "press_x", "1", {"rate": rate, "window": 8}, family="KV-eviction",
        question_aware=False, budget_options=("rate",))), "m", "r.json")
        for rate in (0.25, 0.5)]
    assert [family(key) for key in rows] == ["KV-eviction", "KV-eviction"]
    assert rows[0] != rows[1] and curve_key(rows[0]) == curve_key(rows[1])
    assert curve_key(rows[0]).settings == (("window", "8"),)


def test_a_record_without_declarations_uses_the_installed_registration() -> None:
    old = {"model": "compressed", "model_args": "pretrained=m,compressor=truncate,rate=0.5"}
    key = row_key(old, "m", "r.json")
    assert family(key) == Family.HARD.value and key.budget_options == ("rate", "target_tokens")
    unknown = {"model": "compressed", "model_args": "pretrained=m,compressor=gone"}
    assert family(row_key(unknown, "m", "r.json")) == Family.UNDECLARED.value


def test_a_stock_run_is_a_baseline() -> None:
    key = row_key({"model": "hf", "model_args": "pretrained=m"}, "m", "r.json")
    assert key.stock and family(key) == Family.BASELINE.value
