"""The compatibility adapter: the legacy hook arguments, the version gate, nothing left behind."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest

from bench.compressors.kvpress import compat
from bench.compressors.kvpress.prefill import press_prefill
from bench.substrate.errors import InputError


def _attention() -> Any:
    """An attention module of layer 0, as the hook receives it."""
    import torch

    module = torch.nn.Module()
    vars(module)["layer_idx"] = 0
    return module


def _cache_of(length: int) -> Any:
    import torch
    from transformers import DynamicCache

    cache = DynamicCache()
    states = torch.zeros(1, 2, length, 4)
    cache.update(states, states, 0)
    return cache


def _hidden(q_len: int) -> Any:
    import torch

    return torch.zeros(1, q_len, 8)


def test_the_cache_gets_its_legacy_name_and_the_prefill_positions() -> None:
    cache = _cache_of(5)
    adapted = compat.legacy_hook_kwargs(_attention(), {"hidden_states": _hidden(5),
                                                       "cache": cache})
    assert adapted["past_key_values"] is cache
    assert adapted["cache_position"].tolist() == [0, 1, 2, 3, 4]


def test_a_decoding_step_is_not_taken_for_a_prefill(kvpress_version: str) -> None:
    from kvpress.presses.base_press import is_prefilling

    adapted = compat.legacy_hook_kwargs(_attention(), {"hidden_states": _hidden(1),
                                                       "cache": _cache_of(6)})
    assert adapted["cache_position"].tolist() == [5]
    assert not is_prefilling(adapted["cache_position"], 1)


def test_legacy_arguments_pass_through_unchanged() -> None:
    kwargs = {"hidden_states": _hidden(3), "past_key_values": object(),
              "cache_position": object()}
    assert compat.legacy_hook_kwargs(_attention(), kwargs) is kwargs


@pytest.mark.parametrize("installed", ["0.5.4", "0.6.0"])
def test_an_unchecked_version_is_refused_in_one_line(installed: str) -> None:
    with pytest.raises(InputError) as raised:
        compat.require_checked_version(installed)
    message = str(raised.value)
    assert "\n" not in message
    assert installed in message and ", ".join(compat.CHECKED_VERSIONS) in message


def test_the_factory_refuses_an_unchecked_version(monkeypatch: pytest.MonkeyPatch,
                                                  make_compressor: Any) -> None:
    monkeypatch.setattr(compat, "version", lambda name: "9.9.9")
    with pytest.raises(InputError, match=r"kvpress 9\.9\.9 is installed"):
        make_compressor({"press": "knorm", "rate": 0.5})


def test_a_missing_kvpress_is_one_line_with_the_install_command(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from importlib.metadata import PackageNotFoundError

    def missing(name: str) -> str:
        raise PackageNotFoundError(name)

    monkeypatch.setattr(compat, "version", missing)
    with pytest.raises(InputError) as raised:
        compat.installed_kvpress_version()
    assert "\n" not in str(raised.value) and "--no-deps kvpress==" in str(raised.value)


def test_nothing_is_left_on_the_press_or_the_model(
        make_compressor: Callable[[Mapping[str, Any]], Any]) -> None:
    from kvpress import BasePress, SnapKVPress

    compressor = make_compressor({"press": "snapkv", "rate": 0.5, "window_size": 4})
    hook_before = BasePress.forward_hook
    press_prefill(compressor.model, compressor.press, [1, 5], list(range(10, 30)))
    assert "forward_hook" not in vars(compressor.press)
    assert BasePress.forward_hook is hook_before and SnapKVPress.forward_hook is hook_before
    for layer in compressor.model.model.layers:
        assert not layer.self_attn._forward_hooks
        assert not hasattr(layer.self_attn, "rotary_emb")


def test_the_press_alone_fails_where_the_adapter_is_needed(
        make_compressor: Callable[[Mapping[str, Any]], Any]) -> None:
    """kvpress's own hook on this transformers: the reason the adapter exists."""
    import torch
    from transformers import DynamicCache

    compressor = make_compressor({"press": "knorm", "rate": 0.5})
    seen: list[set[str]] = []
    attention = compressor.model.model.layers[0].self_attn
    probe = attention.register_forward_hook(
        lambda module, args, kwargs, output: seen.append(set(kwargs)), with_kwargs=True)
    ids = torch.tensor([[1, 5, 6, 7]])
    with torch.no_grad():
        compressor.model(input_ids=ids, past_key_values=DynamicCache())
    probe.remove()
    if {"past_key_values", "cache_position"} <= seen[0]:
        pytest.skip("this transformers still passes the arguments kvpress 0.5.5 reads")
    try:
        with pytest.raises(KeyError), compressor.press(compressor.model), torch.no_grad():
            compressor.model(input_ids=ids, past_key_values=DynamicCache())
    finally:
        for layer in compressor.model.model.layers:
            vars(layer.self_attn)["_modules"].pop("rotary_emb", None)
