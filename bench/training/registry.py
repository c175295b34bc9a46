"""The plug-in point for training methods: one registration per method, one entry-point group.

A method registers a :class:`TrainingMethod`: the factory of its parts of a run
(:class:`~bench.training.method.MethodParts`), the shared settings of
:class:`~bench.training.config.TrainConfig` it reads (with their help), the dataclass of its own
options and what it supports. ``python -m bench.train``'s ``--method`` choices, flags and help
come from these registrations. The built-in methods register when :mod:`bench.compressors.soft`
is imported; a third-party package names its :class:`TrainingMethod` in the entry-point group
``compressbench.training_methods``.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

from bench.substrate.errors import InputError
from bench.training.method import MethodParts

ENTRY_POINT_GROUP = "compressbench.training_methods"
_BUILTIN_MODULES = ("bench.compressors.soft",)

PartsFactory = Callable[[Any, bool, dict[str, Any]], MethodParts]
"""``parts(config, cuda, inputs)``: the method's parts of the run configured by ``config`` (a
:class:`~bench.training.config.TrainConfig`; ``inputs``: the identities of its inputs, to record
in the export)."""


class UnknownTrainingMethodError(InputError):
    """A method name no registration and no installed plug-in offers."""


@dataclass(frozen=True)
class Setting:
    """A setting of :class:`~bench.training.config.TrainConfig` that only some methods read."""

    help: str
    choices: tuple[str, ...] | None = None
    default_text: str | None = None
    """The default as ``--help`` shows it, where the field's value does not say it."""


@dataclass(frozen=True)
class TrainingMethod:
    """What ``python -m bench.train --method NAME`` trains."""

    name: str
    summary: str
    """What the method trains, for ``--method``'s help."""
    parts: PartsFactory
    settings: Mapping[str, Setting] = field(default_factory=dict)
    """The method-specific settings of ``TrainConfig`` this method reads, by field name."""
    options: type | None = None
    """A dataclass of the method's own options: each field is a flag (help: the field's
    ``metadata["help"]``); the values are kept in ``TrainConfig.extra``."""
    per_layer_fsdp: bool = False
    """Whether FSDP may wrap the model layer by layer (else only as one unit: NO_WRAP)."""
    every_parameter_trained_in: tuple[str, ...] = ()
    """The stages (``pretrain``, ``finetune``) in which every trained tensor gets a gradient
    at every step; in the others DDP looks for unused parameters."""

    def options_of(self, extra: Mapping[str, Any]) -> Any:
        """The method's options from ``TrainConfig.extra`` (None without an options class)."""
        if self.options is None:
            return None
        return self.options(**extra)

    def option_fields(self) -> tuple[dataclasses.Field[Any], ...]:
        return dataclasses.fields(self.options) if self.options is not None else ()


_REGISTRY: dict[str, TrainingMethod] = {}


def register_training_method(method: TrainingMethod) -> TrainingMethod:
    """Register ``method`` under its name (twice under one name is an error)."""
    known = _REGISTRY.get(method.name)
    if known is not None and known != method:
        raise ValueError(f"training method {method.name!r} is registered twice")
    _REGISTRY[method.name] = method
    return method


def _load_builtins() -> None:
    for module in _BUILTIN_MODULES:
        importlib.import_module(module)


def _load_plugins() -> None:
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        if entry.name in _REGISTRY:
            continue
        method = entry.load()
        if not isinstance(method, TrainingMethod) or method.name != entry.name:
            raise TypeError(f"entry point {entry.name!r} of {ENTRY_POINT_GROUP} must name a "
                            f"TrainingMethod called {entry.name!r}, got {method!r}")
        register_training_method(method)


def training_methods() -> dict[str, TrainingMethod]:
    """Every built-in and plug-in training method by name, sorted."""
    _load_builtins()
    _load_plugins()
    return dict(sorted(_REGISTRY.items()))


def training_method(name: str) -> TrainingMethod:
    """The method registered as ``name`` (an error names the known ones)."""
    methods = training_methods()
    if name not in methods:
        raise UnknownTrainingMethodError(f"method must be one of {tuple(methods)}, got {name!r}")
    return methods[name]


def method_parts(config: Any, cuda: bool, inputs: dict[str, Any]) -> MethodParts:
    """The parts of ``config.method``'s run (``inputs``: recorded in the export)."""
    return training_method(config.method).parts(config, cuda, inputs)


def readers_of(setting: str) -> list[str]:
    """The methods that read the method-specific setting ``setting``."""
    return [name for name, method in training_methods().items() if setting in method.settings]


class MethodsWhere:
    """The registered methods with a property, as a live collection of names."""

    def __init__(self, has: Callable[[TrainingMethod], bool]) -> None:
        self._has = has

    def __contains__(self, name: object) -> bool:
        method = training_methods().get(str(name))
        return method is not None and self._has(method)

    def __iter__(self) -> Iterator[str]:
        return iter([name for name, method in training_methods().items() if self._has(method)])


PER_LAYER_FSDP = MethodsWhere(lambda method: method.per_layer_fsdp)
"""The methods FSDP may wrap layer by layer."""
