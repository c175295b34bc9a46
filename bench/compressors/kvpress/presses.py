"""kvpress's presses by name, built from ``--model_args`` options.

``press=`` names one of kvpress's score-based presses (``ScorerPress`` subclasses: a score per
cached entry, the top ``n_kept`` per KV head kept), by its class name (``SnapKVPress``) or that
name in lower case without the ``Press`` suffix, ``_`` and ``-`` (``snapkv``,
``expected_attention``, ``streaming_llm``). Presses that wrap another press, or decode-time
presses, cannot be built from flat options and are not offered. The press's own options are
its dataclass fields of scalar type (``window_size=16``); ``compression_ratio`` is set from
the compressor's ``rate`` (:func:`compression_ratio`).
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from typing import Any

from bench.substrate.errors import InputError

NO_PRESS = "none"
EAGER_PRESSES = frozenset({"ObservedAttentionPress"})
"""Presses that read the attention weights, so need eager attention (as kvpress's evaluation
sets it)."""
_RATIO_FIELD = "compression_ratio"
_TRUE = ("1", "true", "yes")
_FALSE = ("0", "false", "no")


def compression_ratio(rate: float) -> float:
    """kvpress's ``compression_ratio`` (the fraction REMOVED) for ``rate`` (the fraction kept).

    Rounded to 12 decimals so that a decimal rate maps to the decimal ratio (``1 - 0.9`` is
    ``0.09999999999999998`` in floating point, which can shift kvpress's ``int(n * (1 - r))``).
    """
    if not 0.0 < rate <= 1.0:
        raise InputError(f"rate={rate} is the kept fraction of the context's KV entries and must "
                         "be in (0, 1]", field="rate")
    return round(1.0 - rate, 12)


def _key(name: str) -> str:
    key = name.lower().replace("_", "").replace("-", "")
    return key.removesuffix("press") if key != "press" else key


def offered_presses() -> dict[str, type]:
    """kvpress's score-based presses, by class name."""
    import kvpress

    offered: dict[str, type] = {}
    for name in kvpress.__all__:
        cls = getattr(kvpress, name)
        if (isinstance(cls, type) and issubclass(cls, kvpress.ScorerPress)
                and cls is not kvpress.ScorerPress and dataclasses.is_dataclass(cls)):
            offered[name] = cls
    return offered


def press_class(name: str) -> type:
    """The press class ``name`` designates (see the module's docstring)."""
    offered = offered_presses()
    by_key = {_key(class_name): cls for class_name, cls in offered.items()}
    cls = offered.get(name) or by_key.get(_key(name))
    if cls is None:
        names = ", ".join(sorted(offered))
        raise InputError(f"unknown press {name!r}; kvpress presses offered: {names}, or "
                         f"{NO_PRESS} (the full cache through the same path)", field="press")
    return cls


def scalar_fields(cls: type) -> dict[str, Any]:
    """The press's options settable from text: public dataclass fields of scalar type."""
    hints = _type_hints(cls)
    fields: dict[str, Any] = {}
    for field in dataclasses.fields(cls):
        annotation = hints.get(field.name, field.type)
        if not field.name.startswith("_") and field.name != _RATIO_FIELD \
                and _scalar_types(annotation):
            fields[field.name] = annotation
    return fields


def build_press(cls: type, ratio: float, options: Mapping[str, Any]) -> Any:
    """An instance of ``cls`` with ``compression_ratio=ratio`` and ``options`` (text values
    converted to the field's type)."""
    fields = scalar_fields(cls)
    unknown = sorted(set(options) - set(fields))
    if unknown:
        accepted = ", ".join(sorted(fields)) or "(none)"
        raise InputError(f"{cls.__name__} has no option {', '.join(unknown)}; its options: "
                         f"{accepted} (and rate)", field=unknown[0])
    kwargs = {name: _converted(raw, fields[name], name) for name, raw in options.items()}
    try:
        return cls(**{_RATIO_FIELD: ratio}, **kwargs)
    except (TypeError, AssertionError, ValueError) as error:
        raise InputError(f"{cls.__name__} cannot be built from these options: {error}") \
            from None


def press_options(press: Any) -> dict[str, Any]:
    """The press's scalar options with their values (defaults included), for the settings."""
    return {name: getattr(press, name) for name in scalar_fields(type(press))}


def _type_hints(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls)
    except (NameError, TypeError):
        return {}


def _scalar_types(annotation: Any) -> tuple[type, ...]:
    """The scalar types ``annotation`` admits (empty when it admits something else)."""
    if annotation in (int, float, bool, str):
        return (annotation,)
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal and all(isinstance(a, str) for a in args):
        return (str,)
    if args and type(None) in args:
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1 and inner[0] in (int, float, bool, str):
            return (inner[0],)
    return ()


def _converted(raw: Any, annotation: Any, name: str) -> Any:
    optional = type(None) in typing.get_args(annotation)
    if optional and str(raw).lower() in ("", "none"):
        return None
    (kind,) = _scalar_types(annotation)
    text = str(raw).strip()
    if kind is bool:
        if isinstance(raw, bool):
            return raw
        if text.lower() in _TRUE + _FALSE:
            return text.lower() in _TRUE
        raise InputError(f"option {name}={raw!r} is not a boolean (true/false)", field=name)
    try:
        value = kind(text) if not isinstance(raw, kind) else raw
    except ValueError:
        raise InputError(f"option {name}={raw!r} is not a valid {kind.__name__}",
                         field=name) from None
    choices = typing.get_args(annotation)
    if typing.get_origin(annotation) is typing.Literal and value not in choices:
        raise InputError(f"option {name}={raw!r} is not one of {', '.join(choices)}", field=name)
    return value
