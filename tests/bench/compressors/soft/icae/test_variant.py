"""``icae`` picks its implementation by ``variant``: v2 (default) or 500x-baseline."""

from __future__ import annotations

import sys
import types
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from bench.compressors import build_compressor
from bench.compressors._api import TargetModel
from bench.compressors.soft.icae.compressor import Icae


class _Recorded:
    name = "icae"
    version = "test"

    def __init__(self, options: Mapping[str, Any]) -> None:
        self.options = dict(options)

    def settings(self) -> dict[str, Any]:
        return self.options

    def compress(self, requests: Any) -> list[Any]:
        return []


def test_default_variant_hands_the_other_options_to_icae_v2(
        load_target: Callable[[str], TargetModel], monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("bench.compressors.soft.icae_v2.compressor")
    module.make_icae_v2 = lambda target, options: _Recorded(options)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "bench.compressors.soft.icae_v2.compressor", module)
    target = load_target("llama")
    for options in ({"num_mem": 2}, {"num_mem": 2, "variant": "v2"}):
        compressor = build_compressor("icae", target, options)
        assert isinstance(compressor, _Recorded) and compressor.options == {"num_mem": 2}


def test_500x_baseline_variant_is_built_here_and_recorded(
        load_target: Callable[[str], TargetModel]) -> None:
    with pytest.warns(UserWarning, match="no checkpoint"):
        compressor = build_compressor("icae", load_target("llama"),
                                      {"variant": "500x-baseline", "num_mem": 2})
    assert isinstance(compressor, Icae)
    assert compressor.settings()["variant"] == "500x-baseline"
