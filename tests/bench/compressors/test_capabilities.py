"""What compressors declare when they register: family, question use, budget options."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from bench.compressors import (
    UNDECLARED,
    Capabilities,
    Compressor,
    Family,
    Registration,
    TargetModel,
    _api,
    available_compressors,
    capabilities_of,
    get_registration,
    options_type_of,
)

EXPECTED_FAMILIES = {
    "none": Family.BASELINE, "zero_shot": Family.BASELINE, "llmzip": Family.LOSSLESS,
    "truncate": Family.HARD, "random_drop": Family.HARD, "selective_context": Family.HARD,
    "llmlingua": Family.HARD, "longllmlingua": Family.HARD, "llmlingua2": Family.HARD,
    "500x": Family.SOFT_KV, "gist": Family.SOFT_KV, "icae": Family.SOFT_EMBEDDINGS,
    "autocompressor": Family.SOFT_EMBEDDINGS, "cram": Family.SOFT_EMBEDDINGS,
    "xrag": Family.SOFT_EMBEDDINGS, "pisco": Family.SOFT_EMBEDDINGS,
}


@pytest.mark.parametrize(("name", "family"), sorted(EXPECTED_FAMILIES.items()))
def test_each_built_in_compressor_declares_its_family(name: str, family: Family) -> None:
    assert capabilities_of(name).family is family


def test_every_built_in_compressor_declares_a_family() -> None:
    builtin = [name for name in available_compressors() if name in _api._REGISTRY]
    assert {name: capabilities_of(name).family for name in builtin
            if capabilities_of(name).family is Family.UNDECLARED} == {}


@pytest.mark.parametrize("name", sorted(EXPECTED_FAMILIES))
def test_budget_options_are_options_of_the_method(name: str) -> None:
    options = options_type_of(name)
    accepted = set() if options is None else {f.name for f in dataclasses.fields(options)}
    assert set(capabilities_of(name).budget_options) <= accepted


def test_question_use_is_declared_per_method_or_by_its_settings() -> None:
    assert capabilities_of("longllmlingua").uses_question({}) is True
    assert capabilities_of("llmlingua").uses_question({}) is False
    cram = capabilities_of("cram")
    assert cram.uses_question({"objective": "kl", "probes": "question"}) is True
    assert cram.uses_question({"objective": "kl", "probes": "none"}) is False
    assert cram.uses_question({"objective": "reconstruction", "probes": "question"}) is False


def test_only_lossless_coding_is_kept_out_of_the_compression_cache() -> None:
    assert [name for name in EXPECTED_FAMILIES if not capabilities_of(name).cacheable] == [
        "llmzip"]


def test_only_soft_and_kv_families_feed_the_model() -> None:
    assert {f for f in Family if f.feeds_the_model} == {
        Family.SOFT_EMBEDDINGS, Family.SOFT_KV, Family.KV_EVICTION}


class _EntryPoint:
    def __init__(self, loaded: Any) -> None:
        self.loaded = loaded

    def load(self) -> Any:
        return self.loaded


def _factory(target: TargetModel, options: Mapping[str, Any]) -> Compressor:
    raise AssertionError("not built")


def test_a_plugin_registration_carries_its_capabilities_and_a_bare_factory_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    declared = Registration(_factory, Capabilities(Family.KV_EVICTION, budget_options=("r",)))
    plugins = {"declared_plugin": _EntryPoint(declared), "bare_plugin": _EntryPoint(_factory)}
    monkeypatch.setattr(_api, "_plugin_entry_points", lambda: plugins)
    assert get_registration("declared_plugin") == declared
    assert get_registration("bare_plugin") == Registration(_factory, UNDECLARED)
    assert capabilities_of("bare_plugin").family is Family.UNDECLARED


def test_a_name_registered_twice_is_refused() -> None:
    register = _api.register_compressor("none", Capabilities(Family.BASELINE))
    with pytest.raises(ValueError, match="registered twice"):
        register(_factory)


def test_the_front_end_records_what_the_method_declared(tiny_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    from bench.harness.frontend import CompressionFrontEnd

    compressor = SimpleNamespace(name="m", version="2", settings=lambda: {"probes": "question"})
    declared = Capabilities(Family.SOFT_EMBEDDINGS, budget_options=("num_mem",),
                            question_aware=lambda settings: settings["probes"] == "question")
    target = TargetModel("tiny", AutoTokenizer.from_pretrained(str(tiny_model_dir)))
    front_end = CompressionFrontEnd(compressor, declared, target, None)  # type: ignore[arg-type]
    record = front_end.compressor_record()
    assert record.to_json() == {"name": "m", "version": "2", "settings": {"probes": "question"},
                                "family": "soft-embeddings", "question_aware": True,
                                "budget_options": ["num_mem"]}
