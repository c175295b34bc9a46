"""Work a compressor does whatever its budget, shared by the compressors built in one scope.

Compressors whose options differ only in their budget (``rate``, ``target_tokens``) load the
same scoring model and score each context the same way; only the selection from the scores
depends on the budget. Inside :func:`shared_work` (``python -m bench sweep`` enters it around
its runs) such compressors load that model once and score each context once: the scores are
handed out again as they were computed, so the compressions are those of separate runs.
Outside a scope each compressor loads its own model and keeps nothing past a context.

A scope holds the work of one scoring model at a time, the one asked for last; asking for
another lets go of the first with its scores, so a scope holds no more models than one
compressor does. Scopes are for one thread (the sweep builds and runs compressors in turn).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TypeVar, cast

T = TypeVar("T")


@dataclass
class _HeldModel:
    """A loaded scoring model and the scores computed with it, by what identifies each."""

    key: Hashable
    model: object
    scores: dict[Hashable, object] = field(default_factory=dict)


class SharedWork:
    """The scoring model held by a scope, its scores, and how many scores were reused."""

    def __init__(self) -> None:
        self._held: _HeldModel | None = None
        self.reused = 0

    def model(self, key: Hashable, load: Callable[[], T]) -> T:
        """The model loaded under ``key``: ``load()`` the first time, after letting go of the
        model held before."""
        if self._held is None or self._held.key != key:
            self._held = None
            self._held = _HeldModel(key, load())
        return cast(T, self._held.model)

    def scores(self, model_key: Hashable, key: Hashable, compute: Callable[[], T]) -> T:
        """The scores under ``key`` made with the held model ``model_key``: ``compute()`` the
        first time (every time when that model is not the one held)."""
        held = self._held
        if held is None or held.key != model_key:
            return compute()
        if key in held.scores:
            self.reused += 1
            return cast(T, held.scores[key])
        value = compute()
        held.scores[key] = value
        return value

    def release(self) -> None:
        """Let go of the held model and its scores."""
        self._held = None


_scopes: list[SharedWork] = []


@contextmanager
def shared_work() -> Iterator[SharedWork]:
    """A scope in which compressors share their budget-independent work (module docstring);
    everything it holds is let go of when it ends."""
    work = SharedWork()
    _scopes.append(work)
    try:
        yield work
    finally:
        _scopes.remove(work)
        work.release()


def shared_model(key: Hashable, load: Callable[[], T]) -> T:
    """``load()``, or inside a scope the model it holds under ``key``."""
    return _scopes[-1].model(key, load) if _scopes else load()


def shared_scores(model_key: Hashable, key: Hashable, compute: Callable[[], T]) -> T:
    """``compute()``, or inside a scope the scores it holds under ``key`` for the model held
    under ``model_key``."""
    return _scopes[-1].scores(model_key, key, compute) if _scopes else compute()
