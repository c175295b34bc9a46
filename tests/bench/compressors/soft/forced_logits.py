"""A decoder made to pick a chosen token at one step: to test where generation stops."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch


@contextmanager
def token_forced_at(model: torch.nn.Module, token: int, step: int) -> Iterator[None]:
    """Make ``token`` the argmax of the ``step``-th forward call of ``model`` (0 = the first,
    which yields the first generated token)."""
    calls = itertools.count()

    def force(module: torch.nn.Module, args: Any, output: Any) -> None:
        if next(calls) == step:
            output.logits[..., token] = output.logits.max() + 100.0

    handle = model.register_forward_hook(force)
    try:
        yield
    finally:
        handle.remove()
