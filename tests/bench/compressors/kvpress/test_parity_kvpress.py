"""Parity of ``compressor=kvpress`` with kvpress 0.5.5's own pipeline, on the reference fixtures.

Every run of ``cases.jsonl`` (case x press config x ratio, read from the fixture) is driven
through the public compressor on the run's exact ids: the context ids pressed (no head), the
question ids decoded from the compressed cache. Per layer and KV head the kept positions are
the fixture's as a set; the compressed keys and values equal the stored full cache gathered at
the fixture's kept positions in the fixture's (cache) order, within ``fixture.json``'s
tolerances; the question starts at the uncompressed context length; the greedy ids are exact.
The plain no-press baseline of each case goes through the same path. Every press config of
the first case at its first ratio is in the fast tier, the other runs in the slow one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest

from bench.generation import GenerationSettings
from bench.records import CompressedKV
from tests.bench.compressors.kvpress.conftest import METHOD
from tests.bench.compressors.soft.reference_fixtures import ReferenceFixture, read_cases

CASES = read_cases(METHOD)
FIRST_CASE = next((line["id"] for line in CASES if line["kind"] == "case"), None)
FIRST_RATIO = next((line["compression_ratio"] for line in CASES if line["kind"] == "run"), None)


def _tiered(kind: str, fast: Callable[[dict[str, Any]], bool]) -> list[Any]:
    return [pytest.param(line["id"], id=line["id"], marks=() if fast(line) else pytest.mark.slow)
            for line in CASES if line["kind"] == kind]


RUNS = _tiered("run", lambda run: run["case"] == FIRST_CASE
               and run["compression_ratio"] == FIRST_RATIO)
BASELINES = _tiered("case", lambda case: case["id"] == FIRST_CASE)


def run_options(run: Mapping[str, Any]) -> dict[str, Any]:
    """The ``--model_args`` options of a fixture run: kvpress's ratio as the kept rate."""
    options = {key: value for key, value in run["press_kwargs"].items()
               if key != "compression_ratio"}
    return {"press": run["press"], "rate": 1.0 - run["compression_ratio"],
            "query_aware": run["query_aware"], **options}


def line(fixture: ReferenceFixture, line_id: str) -> dict[str, Any]:
    """A ``cases.jsonl`` line (its cases and runs share the file, so ``fixture.cases``, which
    expects cases only, does not apply)."""
    return next(entry for entry in CASES if entry["id"] == line_id)


def test_fixture_lines_match_its_counts(fixture: ReferenceFixture) -> None:
    kinds = [entry["kind"] for entry in CASES]
    assert kinds.count("case") == fixture.spec["cases"]
    assert kinds.count("run") == fixture.spec["runs"]


def layer_count(fixture: ReferenceFixture, run_id: str) -> int:
    return sum(1 for name in fixture.tensors
               if name.startswith(f"{run_id}.layer") and name.endswith(".kept"))


def full_states(fixture: ReferenceFixture, case_id: str, variant: str, layer: int
                ) -> tuple[Any, Any]:
    """The fixture's full prefill keys and values of one layer, ``[kv_heads, n, head_dim]``."""
    tensors = fixture.tensors
    prefix = f"{case_id}.{variant}.layer{layer}"
    return tensors[f"{prefix}.key"][0], tensors[f"{prefix}.value"][0]


def gathered(states: Any, kept: Any) -> Any:
    """``states[h, kept[h, i]]`` for every KV head ``h``, in ``kept``'s order."""
    return states.gather(1, kept.long()[..., None].expand(-1, -1, states.shape[-1]))


def kept_positions(ours: Any, full: Any) -> list[set[int]]:
    """Per KV head, the positions of ``full`` that our kept keys are (nearest rows)."""
    import torch

    return [set(torch.cdist(ours[h], full[h]).argmin(-1).tolist()) for h in range(ours.shape[0])]


def assert_close(ours: Any, expected: Any, fixture: ReferenceFixture, what: str) -> None:
    import torch

    assert ours.shape == expected.shape, what
    torch.testing.assert_close(ours, expected, atol=fixture.tensor_atol,
                               rtol=fixture.tensor_rtol, msg=what)


def greedy(compressor: Any, compressed: CompressedKV, question_ids: list[int],
           fixture: ReferenceFixture) -> list[int]:
    settings = GenerationSettings(max_new_tokens=int(fixture.spec["max_new_tokens"]))
    answer: list[int] = compressor.answer_ids(compressed, question_ids, settings).with_eos
    return answer


@pytest.mark.parametrize("run_id", RUNS)
def test_press_parity(fixture: ReferenceFixture, make_compressor: Any, run_id: str) -> None:
    run = line(fixture, run_id)
    compressor = make_compressor(run_options(run), run["attn_implementation"])
    settings = compressor.settings()
    assert settings["compression_ratio"] == run["compression_ratio"]
    assert settings["attn_implementation"] == run["attn_implementation"]
    compressed = compressor.compress_ids([], run["context_ids"])

    assert compressed.position_offset == run["n_context"] == len(run["context_ids"])
    assert compressed.stats.original_tokens == run["n_context"]
    assert compressed.stats.compressed_tokens == run["n_kept"]
    assert compressed.extra["achieved_rate"] == run["n_kept"] / run["n_context"]
    layers = layer_count(fixture, run_id)
    assert len(compressed.keys) == len(compressed.values) == layers
    for layer in range(layers):
        kept = fixture.tensors[f"{run_id}.layer{layer}.kept"]
        full_keys, full_values = full_states(fixture, run["case"], run["kv_variant"], layer)
        ours_keys, ours_values = compressed.keys[layer], compressed.values[layer]
        assert [*ours_keys[None].shape] == run["cache_shape"]
        assert kept_positions(ours_keys, full_keys) == [set(h.tolist()) for h in kept], layer
        assert_close(ours_keys, gathered(full_keys, kept), fixture, f"layer {layer} keys")
        assert_close(ours_values, gathered(full_values, kept), fixture, f"layer {layer} values")
    assert greedy(compressor, compressed, run["question_ids"], fixture) == \
        run["expected_token_ids"]


@pytest.mark.parametrize("case_id", BASELINES)
def test_no_press_parity(fixture: ReferenceFixture,
                         make_compressor: Callable[[Mapping[str, Any]], Any],
                         case_id: str) -> None:
    """``press=none`` through the same path: the full cache, the pipeline's no-press ids."""
    case = line(fixture, case_id)
    compressor = make_compressor({"press": None})
    compressed = compressor.compress_ids([], case["context_ids"])
    assert compressed.position_offset == len(case["context_ids"])
    for layer, (keys, values) in enumerate(zip(compressed.keys, compressed.values,
                                               strict=True)):
        full_keys, full_values = full_states(fixture, case_id, "ctx", layer)
        assert_close(keys, full_keys, fixture, f"layer {layer} keys")
        assert_close(values, full_values, fixture, f"layer {layer} values")
    assert greedy(compressor, compressed, case["question_ids"], fixture) == \
        case["baseline_token_ids"]
