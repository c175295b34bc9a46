"""Runs kvpress's press hooks under the transformers this project installs.

kvpress 0.5.5 declares ``transformers<5.3``. Its ``BasePress.forward_hook`` reads two keyword
arguments of the attention module's call: ``past_key_values`` (the cache) and
``cache_position`` (to tell the prefill from decoding: ``cache_position[-1] + 1 == q_len``).
From transformers 5.4 the Llama attention no longer receives ``cache_position``, and from 5.24
its cache argument is called ``cache``. :func:`legacy_hook_kwargs` gives the hook both again:
the cache under its old name, and, where ``cache_position`` is absent, the positions of the
current tokens in the cache, ``length - q_len .. length - 1`` with ``length`` the layer's cache
length after the update, so that the prefill test becomes ``length == q_len``, the same
condition. Nothing else differs; where the keys are present they are passed through unchanged.

The adapter wraps one press instance's ``forward_hook`` for the duration of a
``with pressing(...)`` block (:func:`hooks_adapted`); kvpress's files, its classes and other
models are left alone. It is applied only to the kvpress versions it was checked with
(:data:`CHECKED_VERSIONS`); any other installed version is refused in one line.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import torch

from bench.substrate.errors import InputError

ADAPTER = "compressbench-kvpress-hook-kwargs"
ADAPTER_VERSION = "1"
CHECKED_VERSIONS = ("0.5.5",)
INSTALL_HINT = ("install it with: pip install 'compressbench[kv]' && "
                "pip install --no-deps kvpress==0.5.5")

Hook = Callable[[torch.nn.Module, Any, dict[str, Any], Any], Any]


def installed_kvpress_version() -> str:
    """The installed kvpress version; one line with the install command when it is absent."""
    try:
        return version("kvpress")
    except PackageNotFoundError:
        raise InputError("compressor 'kvpress' needs the kvpress package, which is not installed",
                         hint=INSTALL_HINT) from None


def require_checked_version(installed: str) -> None:
    """Refuse a kvpress version the adapter was not checked with."""
    if installed not in CHECKED_VERSIONS:
        checked = ", ".join(CHECKED_VERSIONS)
        raise InputError(f"kvpress {installed} is installed, but compressor 'kvpress' is checked "
                         f"only with kvpress {checked}", hint=INSTALL_HINT)


def adapter_record(installed: str) -> dict[str, str]:
    """What the settings record about the library and the adapter."""
    return {"kvpress_version": installed, "kvpress_adapter": f"{ADAPTER}/{ADAPTER_VERSION}"}


def legacy_hook_kwargs(module: torch.nn.Module, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The attention call's keyword arguments as kvpress 0.5.5's hooks read them."""
    if "past_key_values" in kwargs and "cache_position" in kwargs:
        return kwargs
    adapted = dict(kwargs)
    cache: Any = adapted.setdefault("past_key_values", kwargs.get("cache"))
    if "cache_position" not in adapted:
        length = int(cache.get_seq_length(module.layer_idx))
        q_len = int(kwargs["hidden_states"].shape[1])
        device = kwargs["hidden_states"].device
        adapted["cache_position"] = torch.arange(length - q_len, length, device=device)
    return adapted


def _unchanged(hook: Hook) -> Hook:
    return hook


@contextmanager
def hooks_adapted(press: Any, inner: Callable[[Hook], Hook] = _unchanged) -> Iterator[None]:
    """Within the block, ``press.forward_hook`` receives :func:`legacy_hook_kwargs`.

    ``inner`` may wrap the press's own hook further (it then sees the legacy keyword names).
    The wrapper is an attribute of this press instance only (it shadows the class's method,
    which ``BasePress.__call__`` registers as ``self.forward_hook``) and is removed on exit.
    """
    hook = inner(press.forward_hook)

    def forward_hook(module: torch.nn.Module, args: Any, kwargs: dict[str, Any],
                     output: Any) -> Any:
        return hook(module, args, legacy_hook_kwargs(module, kwargs), output)

    press.forward_hook = forward_hook
    try:
        yield
    finally:
        del press.forward_hook
