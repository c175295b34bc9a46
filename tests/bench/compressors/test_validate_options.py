"""``validate_options``: a compressor's name and options are checked without building it, and
``parse_options`` holds values to the ranges the options declare."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from bench.compressors import (
    Capabilities,
    Family,
    Interval,
    Registration,
    UnknownCompressorError,
    _api,
    option,
    parse_options,
    validate_options,
)
from bench.substrate.errors import InputError


@dataclass(frozen=True)
class _Options:
    share: float = option(0.5, "kept share", accepts=Interval(0.0, 1.0))
    slots: int = option(2, "slots", accepts=Interval(0.0, open_low=True))
    label: str = option("a", "a label")


_BUILT: list[_Options] = []


def _factory_that_loads(target: Any, options: Mapping[str, Any]) -> Any:
    _BUILT.append(parse_options(_Options, options, "probe"))
    return object()


@pytest.fixture()
def probe(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setitem(_api._REGISTRY, "probe",
                        Registration(_factory_that_loads, Capabilities(Family.HARD)))
    return "probe"


def test_valid_options_pass_without_building_the_compressor(probe: str) -> None:
    _BUILT.clear()
    validate_options(probe, {"share": "0.25", "slots": 3, "label": "b"})
    assert _BUILT == []


def test_an_unknown_name_names_the_closest_known_ones() -> None:
    with pytest.raises(UnknownCompressorError) as raised:
        validate_options("trunacte", {"rate": 0.5})
    assert "unknown compressor 'trunacte' (did you mean 'truncate'?)" in str(raised.value)


def test_an_unknown_option_names_the_closest_accepted_one(probe: str) -> None:
    with pytest.raises(InputError) as raised:
        validate_options(probe, {"shar": 0.5})
    assert str(raised.value) == ("compressor 'probe' does not accept option(s) shar (did you "
                                 "mean 'share'?); accepted options: label, share, slots")


@pytest.mark.parametrize(("options", "problem"), [
    ({"share": 2}, "option share must be in [0, 1], got 2 (share: kept share)"),
    ({"share": "-0.5"}, "option share must be in [0, 1], got '-0.5'"),
    ({"slots": 0}, "option slots must be > 0, got 0"),
    ({"slots": "many"}, "option slots='many' is not a valid int"),
])
def test_a_value_outside_its_declared_range_or_type_is_refused(probe: str,
                                                               options: dict[str, Any],
                                                               problem: str) -> None:
    with pytest.raises(InputError) as raised:
        validate_options(probe, options)
    assert problem in str(raised.value)


@pytest.mark.parametrize(("value", "inside"), [(0.0, True), (1.0, True), (1.5, False),
                                               (-0.1, False)])
def test_an_interval_holds_both_ends_unless_the_low_one_is_open(value: float,
                                                                inside: bool) -> None:
    assert (value in Interval(0.0, 1.0)) is inside
    assert (0.0 in Interval(0.0, 1.0, open_low=True)) is False


@pytest.mark.parametrize(("name", "options", "problem"), [
    ("truncate", {"rate": 2}, "option rate must be in [0, 1], got 2"),
    ("llmlingua2", {"rate": 1.5}, "option rate must be in [0, 1], got 1.5"),
    ("selective_context", {"rate": -1}, "option rate must be in [0, 1], got -1"),
    ("truncate", {"seed": 1}, "does not accept option(s) seed"),
    ("llmlingua2", {"iterative_size": 100}, "does not accept option(s) iterative_size"),
    ("selective_context", {"unit": "word"}, "unit must be one of"),
    ("500x", {"num_mem": 0}, "option num_mem must be >= 1, got 0"),
    ("icae", {"variant": "v3"}, "variant must be one of"),
])
def test_built_in_compressors_refuse_bad_options_before_loading(name: str,
                                                                options: dict[str, Any],
                                                                problem: str) -> None:
    with pytest.raises(InputError) as raised:
        validate_options(name, options)
    assert problem in str(raised.value)


@pytest.mark.parametrize(("name", "options"), [
    ("random_drop", {"rate": 0.25, "seed": 3}),
    ("truncate", {"target_tokens": 10}),
    ("llmlingua", {"rate": 0.33, "iterative_size": 100}),
    ("icae", {"variant": "500x-baseline", "num_mem": 4}),
])
def test_built_in_compressors_accept_their_options(name: str, options: dict[str, Any]) -> None:
    validate_options(name, options)


def _bare_factory(target: Any, options: Mapping[str, Any]) -> Any:
    return target.tokenizer.encode  # needs a real target: no options to check first


def test_a_factory_that_reads_no_options_is_left_to_its_build(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(_api._REGISTRY, "bare",
                        Registration(_bare_factory, Capabilities(Family.HARD)))
    validate_options("bare", {"anything": 1})


def test_options_declared_with_real_types_are_converted_and_named() -> None:
    import dataclasses
    from typing import Optional

    from bench.compressors._api import type_name

    real = dataclasses.make_dataclass("Real", [("rate", float, dataclasses.field(default=0.5)),
                                               ("size", int | None, dataclasses.field(
                                                   default=None))], frozen=True)
    parsed: Any = parse_options(real, {"rate": "0.25", "size": "3"}, "real")
    assert (parsed.rate, parsed.size) == (0.25, 3)
    assert [type_name(float), type_name(int | None), type_name(Optional[int]),  # noqa: UP045
            type_name("str | None")] == ["float", "int | None", "int | None", "str | None"]
