"""The option parser shared by every compressor (``bench.compressors._api.parse_options``)."""

from __future__ import annotations

import pytest

from bench.compressors._api import parse_options
from bench.compressors.soft.cram.compressor import CramOptions
from bench.compressors.soft.encoder.compressor import SoftOptions
from bench.lmeval.cli_errors import user_facing
from bench.substrate.errors import InputError, one_line


@pytest.mark.parametrize(("options_type", "key"), [(CramOptions, "lr"), (CramOptions, "beta2"),
                                                   (CramOptions, "weight_decay"),
                                                   (SoftOptions, "lora_dropout")])
@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf", "Infinity", float("nan")])
def test_a_float_option_that_is_not_finite_is_one_line(options_type: type, key: str,
                                                       value: object) -> None:
    with pytest.raises(InputError) as caught:
        parse_options(options_type, {key: value}, "method")
    assert user_facing(caught.value) is caught.value
    assert one_line(caught.value) == f"compressor 'method': option {key}={value!r} is not a " \
                                     "finite number"


@pytest.mark.parametrize(("options", "message"), [
    ({"ratio": "0.5"}, "compressor 'cram' does not accept option(s) ratio; accepted options: "),
    ({"steps": "many"}, "compressor 'cram': option steps='many' is not a valid int"),
])
def test_an_unknown_option_or_an_unreadable_value_is_bad_input(options: dict[str, str],
                                                                message: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_options(CramOptions, options, "cram")
    assert one_line(caught.value).startswith(message)
