"""The plug-in point for compressors: one protocol, one registry, one entry-point group."""

from __future__ import annotations

import dataclasses
import difflib
import enum
import importlib
import math
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast, runtime_checkable

from bench.generation import DecoderPrompt, GenerationOutput, GenerationSettings
from bench.records import CompressedContext
from bench.substrate.errors import CompressbenchError, InputError
from bench.substrate.help import default_text

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

ENTRY_POINT_GROUP = "compressbench.compressors"


@dataclass(frozen=True)
class CompressionRequest:
    """What a compressor sees: the context, and the question for question-aware methods.

    Only ``context`` may be compressed; instruction and question stay intact in the prompt.
    ``prefix`` and ``suffix`` are the rendered prompt before and after the context, given only
    to methods that declare ``reads_prompt`` (the suffix, which holds the question, only when
    they are also question-aware).
    """

    context: str
    question: str | None = None
    instruction: str | None = None
    prefix: str | None = None
    suffix: str | None = None


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


class Family(enum.Enum):
    """What a compressor hands the answering model; the leaderboard groups rows by it."""

    BASELINE = "baseline"
    HARD = "hard"
    SOFT_EMBEDDINGS = "soft-embeddings"
    SOFT_KV = "soft-KV"
    KV_EVICTION = "KV-eviction"
    LOSSLESS = "lossless"
    UNDECLARED = "undeclared"

    @property
    def feeds_the_model(self) -> bool:
        """Whether the output goes into the target model as vectors or a KV cache (so
        answering needs the model's weights), not as text."""
        return self in (Family.SOFT_EMBEDDINGS, Family.SOFT_KV, Family.KV_EVICTION)


QuestionUse = bool | Callable[[Mapping[str, Any]], bool]


@dataclass(frozen=True)
class Capabilities:
    """What a compressor declares about itself when it registers; recorded in results.

    ``question_aware`` is a bool, or a predicate on the compressor's ``settings()`` for
    methods whose options decide it. ``budget_options`` names the options that set how much
    is kept (rows that differ only in them are points of one curve); ``cacheable`` is False
    for methods whose compressions must not be reused from the compression cache;
    ``reads_prompt`` is True for methods whose compression depends on the rendered prompt
    around the context (:class:`CompressionRequest`'s ``prefix`` and ``suffix``);
    ``prompt_embeds`` is True for methods answered by the target model as it is from one
    sequence of input embeddings (:class:`PromptEmbeddingsDecoder`), which a server that
    takes prompt embeddings can do.
    """

    family: Family
    question_aware: QuestionUse = False
    budget_options: tuple[str, ...] = ()
    cacheable: bool = True
    reads_prompt: bool = False
    prompt_embeds: bool = False

    def uses_question(self, settings: Mapping[str, Any]) -> bool:
        """Whether a compressor with these ``settings`` conditions on the question."""
        if isinstance(self.question_aware, bool):
            return self.question_aware
        return bool(self.question_aware(settings))


UNDECLARED = Capabilities(family=Family.UNDECLARED)


@dataclass(frozen=True)
class Registration:
    """A compressor's factory with its declared capabilities.

    A plug-in's entry point may name a ``Registration`` (capabilities recorded) or a bare
    factory (its family is recorded as ``undeclared``).
    """

    factory: CompressorFactory
    capabilities: Capabilities


_REGISTRY: dict[str, Registration] = {}
_BUILTIN_MODULES = (
    "bench.compressors.baselines",
    "bench.compressors.selective_context",
    "bench.compressors.llmlingua_family",
    "bench.compressors.llmzip",
    "bench.compressors.soft",
    "bench.compressors.kvpress",
)


class UnknownCompressorError(CompressbenchError, KeyError):
    """Raised for a compressor name that neither the built-ins nor a plug-in provide."""

    def __str__(self) -> str:
        return str(self.args[0])


def register_compressor(
    name: str, capabilities: Capabilities
) -> Callable[[CompressorFactory], CompressorFactory]:
    """Decorator registering a factory ``(target, options) -> Compressor`` under ``name``,
    with what the method declares about itself."""

    def decorate(factory: CompressorFactory) -> CompressorFactory:
        known = _REGISTRY.get(name)
        if known is not None and known.factory is not factory:
            raise ValueError(f"compressor {name!r} is registered twice")
        _REGISTRY[name] = Registration(factory, capabilities)
        return factory

    return decorate


def _load_builtins() -> None:
    for module in _BUILTIN_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as error:
            if error.name != module:
                raise


def _plugin_entry_points() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def available_compressors() -> list[str]:
    """Names of the built-in and plug-in compressors, sorted."""
    _load_builtins()
    return sorted(set(_REGISTRY) | set(_plugin_entry_points()))


def get_registration(name: str) -> Registration:
    """Compressor ``name``'s factory and capabilities (built-in first, then entry points)."""
    _load_builtins()
    if name in _REGISTRY:
        return _REGISTRY[name]
    plugins = _plugin_entry_points()
    if name in plugins:
        loaded = plugins[name].load()
        if isinstance(loaded, Registration):
            return loaded
        return Registration(cast(CompressorFactory, loaded), UNDECLARED)
    known = available_compressors()
    raise UnknownCompressorError(f"unknown compressor {name!r}{did_you_mean(name, known)}; "
                                 f"known compressors: {', '.join(known)}")


def did_you_mean(name: str, known: Sequence[str]) -> str:
    """`` (did you mean 'x'?)`` naming the known names closest to ``name``; "" if none is."""
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    return f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""


def get_compressor_factory(name: str) -> CompressorFactory:
    """The factory registered under ``name`` (built-in first, then entry points)."""
    return get_registration(name).factory


def capabilities_of(name: str) -> Capabilities:
    """What compressor ``name`` declared when it registered."""
    return get_registration(name).capabilities


def build_compressor(name: str, target: TargetModel, options: Mapping[str, Any]) -> Compressor:
    """Construct compressor ``name`` for ``target`` with the given options."""
    compressor = get_compressor_factory(name)(target, options)
    if not isinstance(compressor, Compressor):
        raise TypeError(f"factory for {name!r} returned {type(compressor).__name__}, "
                        "which does not implement the Compressor protocol")
    return compressor


OptionsT = TypeVar("OptionsT")

HELP_KEY = "help"
SHOWN_DEFAULT_KEY = "shown_default"
ACCEPTS_KEY = "accepts"


@dataclass(frozen=True)
class Interval:
    """The numbers an option accepts, from ``low`` to ``high`` (None: unbounded), both ends
    included unless ``open_low``."""

    low: float | None = None
    high: float | None = None
    open_low: bool = False

    def __contains__(self, value: float) -> bool:
        if self.low is not None and (value <= self.low if self.open_low else value < self.low):
            return False
        return self.high is None or value <= self.high

    def __str__(self) -> str:
        low, high = self.low, self.high
        if low is not None and high is not None:
            return f"{'(' if self.open_low else '['}{low:g}, {high:g}]"
        if low is not None:
            return f"{'>' if self.open_low else '>='} {low:g}"
        return "any number" if high is None else f"<= {high:g}"

    def requirement(self) -> str:
        """What a refused value must be, e.g. ``in [0, 1]`` or ``>= 1``."""
        both = self.low is not None and self.high is not None
        return f"in {self}" if both else str(self)


def option(default: Any, about: str, *, shown_default: str | None = None,
           accepts: Interval | None = None) -> Any:
    """A field of a compressor's options dataclass, declared once for the code and the help.

    ``about`` says what the option does (``bench eval --help`` shows it); ``shown_default``
    says in words what a default that is decided later means (``None`` meaning "the
    checkpoint's", say), where the value itself would not tell; ``accepts`` is the range
    :func:`parse_options` holds a given value to.
    """
    metadata: dict[str, Any] = {HELP_KEY: about}
    if shown_default is not None:
        metadata[SHOWN_DEFAULT_KEY] = shown_default
    if accepts is not None:
        metadata[ACCEPTS_KEY] = accepts
    return dataclasses.field(default=default, metadata=metadata)


@dataclass(frozen=True)
class OptionDoc:
    """What the help says of one option: its name, type, default (in words where the
    declaration gives them), what it does ("" when undocumented) and the range it accepts."""

    name: str
    type: str
    default: str
    about: str
    accepts: Interval | None


def option_docs(options_type: type) -> list[OptionDoc]:
    """The options of an options dataclass as :func:`option` declared them, in field order."""
    docs = []
    for spec in dataclasses.fields(options_type):
        shown = spec.metadata.get(SHOWN_DEFAULT_KEY)
        if shown is None:
            shown = "required" if spec.default is dataclasses.MISSING else (
                "none" if spec.default is None else default_text(spec.default))
        docs.append(OptionDoc(spec.name, type_name(spec.type).replace(" | None", ""),
                              str(shown), str(spec.metadata.get(HELP_KEY, "")),
                              spec.metadata.get(ACCEPTS_KEY)))
    return docs


_probing_options: ContextVar[bool] = ContextVar("compressbench_probing_options", default=False)
_validating_options: ContextVar[bool] = ContextVar("compressbench_validating_options",
                                                   default=False)


class OptionsDeclared(Exception):
    """Raised by :func:`parse_options` while a factory is probed for its options type."""

    def __init__(self, options_type: type) -> None:
        super().__init__(options_type.__name__)
        self.options_type = options_type


class _OptionsValid(Exception):
    """Raised by :func:`parse_options` once the options of a validated factory are read."""


def _probe_target() -> TargetModel:
    """The target a factory gets while it is probed: no tokenizer, no model."""
    return TargetModel(name="", tokenizer=cast(Any, None))


def options_type_of(name: str) -> type | None:
    """The options dataclass that compressor ``name``'s factory hands to :func:`parse_options`.

    The factory is called with no options and a target without tokenizer; it stops at
    ``parse_options`` (which every factory calls before loading anything), so nothing is
    built. None when the factory fails or returns before declaring its options.
    """
    factory = get_compressor_factory(name)
    token = _probing_options.set(True)
    try:
        factory(_probe_target(), {})
    except OptionsDeclared as declared:
        return declared.options_type
    except Exception:
        return None
    finally:
        _probing_options.reset(token)
    return None


def validate_options(name: str, options: Mapping[str, Any]) -> None:
    """Refuse what building compressor ``name`` with ``options`` would refuse in reading them,
    before any model is loaded: an unknown name (with the closest known ones), an option the
    compressor does not take (with the closest it takes), a value of the wrong type or outside
    the option's declared range (:func:`option`).

    The factory runs up to its :func:`parse_options` call, which reads the options and stops
    it there. A factory that reads its options some other way is checked when it is built.
    """
    factory = get_compressor_factory(name)
    token = _validating_options.set(True)
    try:
        factory(_probe_target(), options)
    except (_OptionsValid, OptionsDeclared):
        return
    except InputError:
        raise
    except Exception:
        return  # the factory needed a real target before reading its options
    finally:
        _validating_options.reset(token)


def parse_options(
    options_type: type[OptionsT], options: Mapping[str, Any], method: str
) -> OptionsT:
    """Build the frozen options dataclass ``options_type`` from user options.

    Unknown keys are an error naming the accepted ones and the closest to each (nothing is
    silently ignored); values are converted to the annotated field type and held to the
    range the field declares (:func:`option`).
    """
    if _probing_options.get():
        raise OptionsDeclared(options_type)
    fields = {f.name: f for f in dataclasses.fields(options_type)}  # type: ignore[arg-type]
    _refuse_unknown(options, sorted(fields), method)
    values: dict[str, Any] = {}
    for key, raw in options.items():
        values[key] = _convert(raw, type_name(fields[key].type), method, key)
        _check_range(values[key], raw, fields[key], method)
    parsed = options_type(**values)
    if _validating_options.get():
        raise _OptionsValid(method)
    return parsed


def type_name(annotation: Any) -> str:
    """An option field's annotation as text, ``float`` or ``int | None``, whether the options
    module postpones annotations (a string) or not (the type itself)."""
    if isinstance(annotation, str):
        return annotation
    members = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and type(None) in members:
        named = [type_name(member) for member in members if member is not type(None)]
        return " | ".join([*named, "None"])
    return annotation.__name__ if isinstance(annotation, type) else str(annotation)


def _refuse_unknown(options: Mapping[str, Any], accepted: Sequence[str], method: str) -> None:
    unknown = sorted(set(options) - set(accepted))
    if not unknown:
        return
    close = sorted({match for key in unknown
                    for match in difflib.get_close_matches(key, accepted, n=1, cutoff=0.6)})
    hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
    raise InputError(f"compressor {method!r} does not accept option(s) {', '.join(unknown)}"
                     f"{hint}; accepted options: {', '.join(accepted) or '(none)'}")


def _check_range(value: Any, raw: Any, spec: dataclasses.Field[Any], method: str) -> None:
    accepts = spec.metadata.get(ACCEPTS_KEY)
    if accepts is None or value is None or value in accepts:
        return
    about = spec.metadata.get(HELP_KEY, "")
    raise InputError(f"compressor {method!r}: option {spec.name} must be "
                     f"{accepts.requirement()}, got {raw!r}"
                     + (f" ({spec.name}: {about})" if about else ""))


def _convert(raw: Any, annotation: str, method: str, key: str) -> Any:
    if raw is None or ("|" in annotation and raw in ("", "none", "None")):
        return None
    base = annotation.replace(" | None", "").strip()
    try:
        value = _parsed(raw, base)
    except (TypeError, ValueError):
        raise InputError(f"compressor {method!r}: option {key}={raw!r} is not a valid {base}") \
            from None
    if base == "float" and not math.isfinite(value):
        raise InputError(f"compressor {method!r}: option {key}={raw!r} is not a finite number")
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


@runtime_checkable
class PromptEmbeddingsDecoder(Protocol):
    """Implemented by soft decoders that answer with the target model as it is, greedily,
    from one sequence of input embeddings at positions ``0..n-1`` (no key/value memory).

    :meth:`SoftDecoder.generate` decodes from exactly these embeddings, so a server that
    takes prompt embeddings answers as the in-process decoder does.
    """

    def decoder_input_embeddings(self, compressed: CompressedContext,
                                 prompt: DecoderPrompt) -> torch.Tensor:
        """The decoder's input embeddings ``[length, hidden]`` for one item, in the dtype of
        the target model's input embedding table."""
        ...

    def stop_token_ids(self) -> list[int]:
        """The token ids that end an answer."""
        ...
