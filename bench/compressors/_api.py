"""The plug-in point for compressors: one protocol, one registry, one entry-point group."""

from __future__ import annotations

import dataclasses
import importlib
import math
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast, runtime_checkable

from bench.generation import DecoderPrompt, GenerationOutput, GenerationSettings
from bench.records import CompressedContext

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

ENTRY_POINT_GROUP = "compressbench.compressors"


@dataclass(frozen=True)
class CompressionRequest:
    """What a compressor sees: the context, and the question for question-aware methods.

    Only ``context`` may be compressed; instruction and question stay intact in the prompt.
    """

    context: str
    question: str | None = None
    instruction: str | None = None


@dataclass
class TargetModel:
    """The model that will answer from the compressed context.

    Rates are counted in this model's tokens. ``model`` is None for non-neural readers.
    """

    name: str
    tokenizer: PreTrainedTokenizerBase
    model: PreTrainedModel | None = None

    @property
    def device(self) -> torch.device:
        import torch

        if self.model is None:
            return torch.device("cpu")
        return next(self.model.parameters()).device

    def count_tokens(self, text: str) -> int:
        """Number of target-model tokens of ``text`` (no special tokens)."""
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])


@runtime_checkable
class Compressor(Protocol):
    """A context compressor.

    ``name`` and ``version`` identify the method; ``settings()`` returns every option that
    changes its output (recorded in results and in cache keys).
    """

    name: str
    version: str

    def settings(self) -> dict[str, Any]:
        """All options that change the output, JSON-serialisable."""
        ...

    def compress(self, requests: Sequence[CompressionRequest]) -> list[CompressedContext]:
        """Compress a batch of contexts; one result per request, in order."""
        ...


CompressorFactory = Callable[[TargetModel, Mapping[str, Any]], Compressor]

_REGISTRY: dict[str, CompressorFactory] = {}
_BUILTIN_MODULES = (
    "bench.compressors.baselines",
    "bench.compressors.selective_context",
    "bench.compressors.llmlingua_family",
    "bench.compressors.llmzip",
    "bench.compressors.soft",
)


class UnknownCompressorError(KeyError):
    """Raised for a compressor name that neither the built-ins nor a plug-in provide."""

    def __str__(self) -> str:
        return str(self.args[0])


def register_compressor(name: str) -> Callable[[CompressorFactory], CompressorFactory]:
    """Decorator registering a factory ``(target, options) -> Compressor`` under ``name``."""

    def decorate(factory: CompressorFactory) -> CompressorFactory:
        if name in _REGISTRY and _REGISTRY[name] is not factory:
            raise ValueError(f"compressor {name!r} is registered twice")
        _REGISTRY[name] = factory
        return factory

    return decorate


def _load_builtins() -> None:
    for module in _BUILTIN_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as error:
            if error.name != module:
                raise


def _plugin_factories() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def available_compressors() -> list[str]:
    """Names of the built-in and plug-in compressors, sorted."""
    _load_builtins()
    return sorted(set(_REGISTRY) | set(_plugin_factories()))


def get_compressor_factory(name: str) -> CompressorFactory:
    """The factory registered under ``name`` (built-in first, then entry points)."""
    _load_builtins()
    if name in _REGISTRY:
        return _REGISTRY[name]
    plugins = _plugin_factories()
    if name in plugins:
        factory: CompressorFactory = plugins[name].load()
        return factory
    known = ", ".join(available_compressors())
    raise UnknownCompressorError(f"unknown compressor {name!r}; known compressors: {known}")


def build_compressor(name: str, target: TargetModel, options: Mapping[str, Any]) -> Compressor:
    """Construct compressor ``name`` for ``target`` with the given options."""
    compressor = get_compressor_factory(name)(target, options)
    if not isinstance(compressor, Compressor):
        raise TypeError(f"factory for {name!r} returned {type(compressor).__name__}, "
                        "which does not implement the Compressor protocol")
    return compressor


OptionsT = TypeVar("OptionsT")

_probing_options: ContextVar[bool] = ContextVar("compressbench_probing_options", default=False)


class OptionsDeclared(Exception):
    """Raised by :func:`parse_options` while a factory is probed for its options type."""

    def __init__(self, options_type: type) -> None:
        super().__init__(options_type.__name__)
        self.options_type = options_type


def options_type_of(name: str) -> type | None:
    """The options dataclass that compressor ``name``'s factory hands to :func:`parse_options`.

    The factory is called with no options and a target without tokenizer; it stops at
    ``parse_options`` (which every factory calls before loading anything), so nothing is
    built. None when the factory fails or returns before declaring its options.
    """
    factory = get_compressor_factory(name)
    token = _probing_options.set(True)
    try:
        factory(TargetModel(name="", tokenizer=cast(Any, None)), {})
    except OptionsDeclared as declared:
        return declared.options_type
    except Exception:
        return None
    finally:
        _probing_options.reset(token)
    return None


def parse_options(
    options_type: type[OptionsT], options: Mapping[str, Any], method: str
) -> OptionsT:
    """Build the frozen options dataclass ``options_type`` from user options.

    Unknown keys are an error naming the accepted ones (nothing is silently ignored); values
    are converted to the annotated field type.
    """
    if _probing_options.get():
        raise OptionsDeclared(options_type)
    fields = {f.name: f for f in dataclasses.fields(options_type)}  # type: ignore[arg-type]
    unknown = sorted(set(options) - set(fields))
    if unknown:
        accepted = ", ".join(sorted(fields)) or "(none)"
        raise ValueError(f"compressor {method!r} does not accept option(s) {', '.join(unknown)}; "
                         f"accepted options: {accepted}")
    values: dict[str, Any] = {}
    for key, raw in options.items():
        values[key] = _convert(raw, str(fields[key].type), method, key)
    return options_type(**values)


def _convert(raw: Any, annotation: str, method: str, key: str) -> Any:
    if raw is None or ("|" in annotation and raw in ("", "none", "None")):
        return None
    base = annotation.replace(" | None", "").strip()
    try:
        value = _parsed(raw, base)
    except (TypeError, ValueError):
        raise ValueError(f"compressor {method!r}: option {key}={raw!r} is not a valid {base}") \
            from None
    if base == "float" and not math.isfinite(value):
        raise ValueError(f"compressor {method!r}: option {key}={raw!r} is not a finite number")
    return value


def _parsed(raw: Any, base: str) -> Any:
    if base == "bool":
        return raw if isinstance(raw, bool) else str(raw).lower() in ("1", "true", "yes")
    if base == "int":
        return int(raw)
    if base == "float":
        return float(raw)
    return str(raw) if base == "str" else raw


@runtime_checkable
class SoftDecoder(Protocol):
    """Implemented by compressors whose output is not text (embeddings or a KV cache).

    The method decides how its decoder is prompted (it was trained with that format); the
    ``compressed`` model calls this instead of generating from text.
    """

    def generate(
        self,
        items: Sequence[tuple[CompressedContext, DecoderPrompt]],
        settings: GenerationSettings,
    ) -> list[GenerationOutput]:
        """Greedy answers, one per item, in order; batched where the method allows."""
        ...
