"""Wrappers around the model ``llmlingua`` 0.2.2 drives: cache format and repeated passes."""

from __future__ import annotations

from typing import Any

Key = tuple[Any, ...]


class LegacyCacheModel:
    """Lets llmlingua 0.2.2, written for tuple caches, drive a model that uses Cache objects.

    Tuple/list caches passed in become a ``DynamicCache``; the returned cache becomes a
    tuple of per-layer ``(keys, values)`` again (llmlingua slices and concatenates them).
    Everything else is the wrapped model's.
    """

    def __init__(self, model: Any) -> None:
        self.wrapped = model

    def __getattr__(self, name: str) -> Any:
        return getattr(self.wrapped, name)

    def __call__(self, *args: Any, past_key_values: Any = None, **kwargs: Any) -> Any:
        if isinstance(past_key_values, (list, tuple)):
            from transformers import DynamicCache

            cache = DynamicCache()
            for layer, (keys, values) in enumerate(past_key_values):
                cache.update(keys, values, layer)
            past_key_values = cache
        output = self.wrapped(*args, past_key_values=past_key_values, **kwargs)
        returned = getattr(output, "past_key_values", None)
        if returned is not None and hasattr(returned, "layers"):
            output.past_key_values = tuple(
                (layer.keys, layer.values) for layer in returned.layers
            )
        return output


class ForwardMemo:
    """Answers a repeated forward pass from memory until :meth:`forget`.

    A rate search compresses one context several times, and llmlingua's passes without a
    cache (the first over the whole context; every chunk for LLMLingua-2) are the same each
    time: the same inputs give the very output computed before. Passes with a cache
    (``past_key_values``) depend on what was kept and always run. llmlingua only reads the
    outputs, so handing the same one out again is safe. The outputs go into a memory of
    its own, or into one handed over with :meth:`remember_in` (kept by whoever handed it).
    """

    def __init__(self, model: Any) -> None:
        self.wrapped = model
        self._outputs: dict[Key, Any] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.wrapped, name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("past_key_values") is not None:
            return self.wrapped(*args, **kwargs)
        key = (tuple(_value_key(value) for value in args),
               tuple((name, _value_key(value)) for name, value in sorted(kwargs.items())))
        if key not in self._outputs:
            self._outputs[key] = self.wrapped(*args, **kwargs)
        return self._outputs[key]

    def remember_in(self, outputs: dict[Key, Any]) -> None:
        """Answer from ``outputs`` and add the passes computed to it, until :meth:`forget`."""
        self._outputs = outputs

    def forget(self) -> None:
        """Let go of every output held (call when the context changes); a memory handed over
        with :meth:`remember_in` is left as it is."""
        self._outputs = {}


def _value_key(value: Any) -> Any:
    """A hashable key of an argument: a tensor by dtype, shape and contents."""
    import torch

    if isinstance(value, torch.Tensor):
        return (str(value.dtype), tuple(value.shape), value.detach().cpu().numpy().tobytes())
    return repr(value)
