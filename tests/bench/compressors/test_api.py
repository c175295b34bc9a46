"""The option parser shared by every compressor (``bench.compressors._api.parse_options``)."""

from __future__ import annotations

import pytest

from bench.compressors._api import parse_options
from bench.compressors.soft.cram.compressor import CramOptions
from bench.compressors.soft.encoder.compressor import SoftOptions
from bench.lmeval.cli_errors import user_facing
from bench.substrate.errors import one_line


@pytest.mark.parametrize(("options_type", "key"), [(CramOptions, "lr"), (CramOptions, "beta2"),
                                                   (CramOptions, "weight_decay"),
                                                   (SoftOptions, "lora_dropout")])
@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf", "Infinity", float("nan")])
def test_a_float_option_that_is_not_finite_is_one_line(options_type: type, key: str,
                                                       value: object) -> None:
    with pytest.raises(ValueError) as caught:
        parse_options(options_type, {key: value}, "method")
    assert user_facing(caught.value) is caught.value
    assert one_line(caught.value) == f"compressor 'method': option {key}={value!r} is not a " \
                                     "finite number"
