"""``--compressors``: how entries expand into combinations, what is refused, and the checks of
names and options that run before any model is loaded."""

from __future__ import annotations

import pytest

from bench.substrate.errors import InputError
from bench.sweep.combinations import Combination, check_combinations, parse_compressors


def test_comma_lists_expand_in_the_order_written():
    spec = "none; truncate:rate=0.5,0.25 ;random_drop:rate=0.5,0.25,seed=0,1;"
    assert parse_compressors(spec) == [
        Combination("none"),
        Combination("truncate", (("rate", "0.5"),)),
        Combination("truncate", (("rate", "0.25"),)),
        Combination("random_drop", (("rate", "0.5"), ("seed", "0"))),
        Combination("random_drop", (("rate", "0.5"), ("seed", "1"))),
        Combination("random_drop", (("rate", "0.25"), ("seed", "0"))),
        Combination("random_drop", (("rate", "0.25"), ("seed", "1"))),
    ]


def test_a_combination_reads_as_model_args_and_as_a_label():
    (combination,) = parse_compressors("selective_context:rate=0.5,compressor_model=a/b=c")
    assert combination.options_text() == "rate=0.5,compressor_model=a/b=c"
    assert combination.label() == "selective_context (rate=0.5, compressor_model=a/b=c)"
    assert Combination("none").label() == "none" and Combination("none").options_text() == ""


@pytest.mark.parametrize(("spec", "problem"), [
    ("", "no compressor given"),
    (" ; ", "no compressor given"),
    ("none;;truncate", "an empty entry"),
    (":rate=0.5", "does not start with a compressor name"),
    ("rate=0.5", "does not start with a compressor name"),
    ("truncate:0.5", "'0.5' is not key=value"),
    ("truncate:rate=", "an empty value"),
    ("truncate:rate=0.5,", "an empty value"),
    ("truncate:=0.5", "an option without a name"),
    ("truncate:rate=0.5,0.5", "the value '0.5' twice"),
    ("truncate:rate=0.5,rate=0.25", "option rate twice"),
    ("none;truncate:rate=0.5;truncate:rate=0.25,0.5", "truncate (rate=0.5) is named twice"),
])
def test_malformed_specs_are_one_line_naming_the_flag(spec: str, problem: str):
    with pytest.raises(InputError, match="--compressors") as raised:
        parse_compressors(spec)
    assert problem in str(raised.value)
    assert "\n" not in str(raised.value)


def test_known_compressors_with_valid_options_pass():
    check_combinations(parse_compressors("none;truncate:rate=0.5,0,1;random_drop:seed=3"),
                       "compressed_reader", text_only=True)
    check_combinations(parse_compressors("icae:num_mem=4"), "compressed", text_only=False)


@pytest.mark.parametrize(("spec", "expected"), [
    ("trunacte:rate=0.5", "unknown compressor 'trunacte' (did you mean 'truncate'?)"),
    ("truncate:rat=0.5", "does not accept option(s) rat (did you mean 'rate'?)"),
    ("truncate:rate=2", "option rate must be in [0, 1], got 2"),
    ("random_drop:rate=-0.5", "option rate must be in [0, 1], got -0.5"),
    ("truncate:rate=half", "rate='half' is not a valid float"),
    ("icae:num_mem=4", "feeds vectors into the target model"),
])
def test_bad_names_and_options_are_refused_before_loading(spec: str, expected: str):
    with pytest.raises(InputError) as raised:
        check_combinations(parse_compressors(spec), "compressed_reader", text_only=True)
    assert expected in str(raised.value)
