"""LLMLingua, LongLLMLingua and LLMLingua-2 through the ``llmlingua`` package (0.2.x).

Rates are those of the TARGET model, whatever the compressor model is:

* ``llmlingua`` 0.2.2 counts ``rate``/``target_token`` in its own model's tokens (causal
  methods) or in a tiktoken encoding (LLMLingua-2), and misses them by a wide margin.
  Here the library gets the TARGET tokenizer wherever it would use tiktoken (which also
  keeps it offline), and its own rate parameter is tuned per context (at most
  ``max_iterations`` compressions) until the achieved target-token rate is within
  ``tolerance`` of the requested one; the closest attempt is kept.
* With ``warm_start`` (the default) the search starts where the contexts compressed before
  by the same compressor say the requested rate lies (:class:`RateModel`), and the library's
  passes over the whole context are computed once per context (:class:`ForwardMemo`).
  ``benchmarks/bench_hard_compressors.py`` compares it with a direct library call. Several
  parameters usually land within the tolerance, so a warm text depends on the contexts
  compressed before (deterministic for a given order; the search from the recorded
  ``start_parameter`` gives it again); ``warm_start=False`` starts every context at the
  requested rate, making each text a function of its context alone.
* Inside :func:`bench.compressors.shared_work` (a sweep) the compressors of one compressor
  model and target share the loaded model; LLMLingua-2's also share each context's
  classifier passes, which do not depend on the budget. The causal methods share the model
  only: their passes' logits over the whole vocabulary are let go of after each context.
* Only the context is given to the library (no instruction, question not appended); the
  question-aware ``longllmlingua`` gets the question to condition on.
* ``trust_remote_code`` stays off (the library turns it on by default).
"""

from __future__ import annotations

import importlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from types import ModuleType
from typing import Any

from bench.compressors._api import (
    Capabilities,
    CompressionRequest,
    Family,
    Interval,
    TargetModel,
    option,
    parse_options,
    register_compressor,
)
from bench.compressors._hard_common import (
    INSTALL_HINT,
    Budget,
    CompressorModelError,
    MissingDependencyError,
    ModelKind,
    check_model_kind,
    resolve_device,
)
from bench.compressors._lingua_models import ForwardMemo, Key, LegacyCacheModel
from bench.compressors._rate_search import (
    ContextFeatures,
    RateModel,
    SearchResult,
    search_parameter,
)
from bench.compressors._shared_work import shared_model, shared_scores
from bench.compressors.baselines import RATE_RANGE, budget_settings
from bench.records import CompressedContext, CompressedText, CompressionStats
from bench.substrate.errors import InputError

logger = logging.getLogger(__name__)

# The defaults of the llmlingua package and its README (hub ids; need the network once).
DEFAULT_CAUSAL_MODEL = "NousResearch/Llama-2-7b-hf"
DEFAULT_LLMLINGUA2_MODEL = "microsoft/llmlingua-2-xlm-roberta-large-meetingbank"

# llmlingua 0.2.2 tells BERT from XLM-RoBERTa classifiers by these substrings of the model
# name (anything else raises NotImplementedError inside the library).
_BERT_FAMILY = "bert-base-multilingual-cased"
_XLMR_FAMILY = "xlm-roberta-large"
# LLMLingua-2 keeps words above a percentile of int(100 * (1 - rate) + 1): rate must stay > 0.
_LLMLINGUA2_LOWEST_RATE = 0.01

_CONSTRUCTION_LOCK = threading.Lock()


@dataclass(frozen=True)
class Lingua2Options:
    """Options of ``llmlingua2``; budgets are counted in TARGET tokens."""

    rate: float | None = option(0.5, "kept fraction of the context's target tokens "
                                "(compressed / original)", accepts=RATE_RANGE)
    target_tokens: int | None = option(None, "target tokens to keep; given, it replaces rate",
                                       accepts=Interval(0.0))
    compressor_model: str = option(DEFAULT_LLMLINGUA2_MODEL, "hub id or local folder of the "
                                   "two-label token classifier that scores the words")
    device: str | None = option(None, "device of the compressor model",
                                shown_default="the target model's")
    max_iterations: int = option(4, "most compressions per context in the search for the "
                                 "library rate that gives the requested rate",
                                 accepts=Interval(1.0))
    tolerance: float = option(0.02, "achieved rate within this of the requested one ends the "
                              "search", accepts=Interval(0.0))
    warm_start: bool = option(True, "start each search where earlier contexts of the run say "
                              "the requested rate lies (off: each text depends on its context "
                              "alone)")


@dataclass(frozen=True)
class LinguaOptions(Lingua2Options):
    """Options of ``llmlingua`` and ``longllmlingua``; budgets are counted in TARGET tokens."""

    compressor_model: str = option(DEFAULT_CAUSAL_MODEL, "hub id or local folder of the "
                                   "causal LM that scores the tokens")
    iterative_size: int = option(200, "LLMLingua's segment length in its own tokens",
                                 accepts=Interval(1.0))


@dataclass(frozen=True)
class _Runner:
    """One context's compression at a library parameter, and what the search needs."""

    run: Callable[[float], tuple[str, int]]
    lowest: float
    library_tokens: int
    extra: dict[str, Any]


@dataclass(frozen=True)
class _Method:
    name: str
    kind: ModelKind
    options: type[Lingua2Options]
    summary: str
    question_aware: bool = False
    library_arguments: dict[str, Any] = field(default_factory=dict)


_METHODS = {
    "llmlingua": _Method(
        "llmlingua",
        "causal",
        LinguaOptions,
        "LLMLingua: a small causal LM's budget controller and iterative token pruning",
        library_arguments={"rank_method": "llmlingua", "condition_in_question": "none"},
    ),
    "longllmlingua": _Method(
        "longllmlingua",
        "causal",
        LinguaOptions,
        "LongLLMLingua: LLMLingua's pruning conditioned on the question",
        question_aware=True,
        library_arguments={
            "rank_method": "longllmlingua",
            "condition_in_question": "after_condition",
            "condition_compare": True,
        },
    ),
    "llmlingua2": _Method("llmlingua2", "token_classification", Lingua2Options,
                          "LLMLingua-2: a token classifier keeps the words it scores highest"),
}


class TargetTokenCounter:
    """Stands in for llmlingua's tiktoken encoding: counts and decodes TARGET tokens."""

    def __init__(self, target: TargetModel) -> None:
        self._tokenizer = target.tokenizer

    def encode(self, text: str, **_: Any) -> list[int]:
        """Target token ids of ``text`` (no special tokens)."""
        ids: list[int] = self._tokenizer(text, add_special_tokens=False)["input_ids"]
        return ids

    def decode(self, ids: Sequence[int]) -> str:
        """Text of target token ids."""
        return str(self._tokenizer.decode(list(ids)))


def import_llmlingua(method: str) -> ModuleType:
    """``llmlingua.prompt_compressor``, or a :class:`MissingDependencyError` with the extra."""
    try:
        module = importlib.import_module("llmlingua.prompt_compressor")
    except ImportError as error:
        raise MissingDependencyError(
            f"compressor {method!r} needs the optional package 'llmlingua' "
            f"({error}); install it with: {INSTALL_HINT}"
        ) from error
    return module


@contextmanager
def _counting_tokenizer(module: ModuleType, counter: TargetTokenCounter) -> Iterator[None]:
    """Make ``tiktoken.encoding_for_model`` inside ``module`` return ``counter`` meanwhile."""
    tiktoken = module.tiktoken
    original = tiktoken.encoding_for_model
    tiktoken.encoding_for_model = lambda _name: counter
    try:
        yield
    finally:
        tiktoken.encoding_for_model = original


class LinguaCompressor:
    """One of the LLMLingua methods (see the module docstring)."""

    version = "2"

    def __init__(self, method: str, target: TargetModel, options: Lingua2Options) -> None:
        self._method = _METHODS[method]
        self.name = method
        # Read by the harness: each (context, question) pair gets its own compression.
        Budget.for_context(target, "", options.rate, options.target_tokens)
        if options.max_iterations < 1 or options.tolerance < 0:
            raise InputError(f"{method}: max_iterations must be >= 1 and tolerance >= 0")
        import_llmlingua(method)
        self._target = target
        self._options = options
        self._model_id = options.compressor_model
        self._rate_model = RateModel()
        check_model_kind(self._model_id, self._method.kind, method)
        device = resolve_device(options.device, target)
        # The library counts in the target's tokens (TargetTokenCounter): one per tokenizer.
        self._model_key = ("llmlingua", self._method.kind, self._model_id, device,
                           id(target.tokenizer))
        library = shared_model(self._model_key,
                               lambda: _load_library(self._method, self._model_id, device, target))
        self._compressor = library.compressor
        self._passes = library.passes

    def settings(self) -> dict[str, Any]:
        """Every option that changes the output, with the library arguments used."""
        settings = asdict(self._options)
        settings.pop("device")
        settings["library_arguments"] = dict(self._method.library_arguments)
        return budget_settings(settings)

    def compress(self, requests: Sequence[CompressionRequest]) -> list[CompressedContext]:
        """Compress each request's context; the question only conditions longllmlingua."""
        return list(self.compress_text(requests))

    def compress_text(self, requests: Sequence[CompressionRequest]) -> list[CompressedText]:
        """:meth:`compress`, typed as the text records it returns."""
        return [self._compress_one(request, search=True) for request in requests]

    def compress_direct(self, request: CompressionRequest) -> CompressedText:
        """One library call with the requested rate as the library's own, no search: what
        calling ``llmlingua`` directly gives (same library arguments; learns nothing)."""
        return self._compress_one(request, search=False)

    def _compress_one(self, request: CompressionRequest, search: bool) -> CompressedText:
        start = time.perf_counter()
        options = self._options
        budget = Budget.for_context(self._target, request.context, options.rate,
                                    options.target_tokens)
        extra: dict[str, Any] = {"iterations": 0, **budget.extra}
        if budget.keep_tokens >= budget.original_tokens:
            text, tokens = request.context, budget.original_tokens
        elif budget.keep_tokens == 0:
            text, tokens = "", 0
        else:
            self._passes.remember_in(self._context_passes(request.context))
            try:
                found = self._search(request, budget, search, extra)
            finally:
                self._passes.forget()
            text, tokens = found.text, found.tokens
        stats = CompressionStats(
            original_tokens=budget.original_tokens,
            compressed_tokens=tokens,
            seconds=time.perf_counter() - start,
            requested_rate=budget.requested_rate,
        )
        return CompressedText(text, stats, extra=extra)

    def _context_passes(self, context: str) -> dict[Key, Any]:
        """Where the library's passes over ``context`` are remembered: for LLMLingua-2 (two
        logits per token) in the scope, if any, across compressors; for the causal methods
        (logits over the whole vocabulary) only while this context is compressed."""
        if self._method.kind != "token_classification":
            return {}
        return shared_scores(self._model_key, ("passes", context), dict)

    def _search(self, request: CompressionRequest, budget: Budget, search: bool,
                extra: dict[str, Any]) -> SearchResult:
        """The library's output for ``request`` within the rate tolerance (one call unless
        ``search``), noting in ``extra`` how it was found."""
        options = self._options
        warm = search and options.warm_start
        runner = self._runner(request)
        requested = budget.keep_tokens / budget.original_tokens
        features = ContextFeatures(requested, budget.original_tokens, runner.library_tokens)
        first = self._rate_model.first_guess(features, runner.lowest) if warm else requested
        found = search_parameter(
            runner.run,
            requested_rate=requested,
            original_tokens=budget.original_tokens,
            start=first,
            max_iterations=options.max_iterations if search else 1,
            tolerance=options.tolerance,
            lowest=runner.lowest,
        )
        if warm:
            self._rate_model.learn(features, found, budget.original_tokens)
        extra.update(runner.extra, iterations=found.iterations,
                     library_parameter=found.parameter, start_parameter=found.start)
        return found

    def _runner(self, request: CompressionRequest) -> _Runner:
        """``run(p) -> (text, target tokens)`` for ``request``'s context, and its bounds."""
        compressor = self._compressor
        context = request.context
        if self._method.kind == "token_classification":

            def run_llmlingua2(parameter: float) -> tuple[str, int]:
                result = compressor.compress_prompt(
                    [context], rate=parameter, use_context_level_filter=False
                )
                return self._finish(result["compressed_prompt"])

            library_tokens = len(compressor.tokenizer(context, add_special_tokens=False)
                                 ["input_ids"])
            return _Runner(run_llmlingua2, _LLMLINGUA2_LOWEST_RATE, library_tokens, {})

        arguments = dict(self._method.library_arguments)
        question = (request.question or "").strip()
        conditioned = self._method.question_aware and bool(question)
        if self._method.question_aware and not conditioned:
            logger.warning("%s: no question given; compressing without it", self.name)
            arguments = dict(_METHODS["llmlingua"].library_arguments)
        context_length = compressor.get_token_length(context)
        library_tokens = compressor.get_token_length(context, add_special_tokens=False)
        assert isinstance(self._options, LinguaOptions)
        segment = _segment_size(library_tokens, self._options.iterative_size)

        def run_causal(parameter: float) -> tuple[str, int]:
            result = compressor.compress_prompt(
                [context],
                instruction="",
                question=question if conditioned else "",
                target_token=parameter * context_length,
                iterative_size=segment,
                use_context_level_filter=False,
                concate_question=False,
                **arguments,
            )
            return self._finish(result["compressed_prompt"])

        return _Runner(run_causal, 0.0, library_tokens,
                       {"question_aware": conditioned, "iterative_size": segment})

    def _finish(self, text: str) -> tuple[str, int]:
        text = text.strip()
        return text, self._target.count_tokens(text)


@dataclass(frozen=True)
class _Library:
    """llmlingua's compressor, its model answering through a forward-pass memory."""

    compressor: Any
    passes: ForwardMemo


def _load_library(method: _Method, model_id: str, device: str, target: TargetModel
                  ) -> _Library:
    module = import_llmlingua(method.name)
    llmlingua2 = method.kind == "token_classification"
    with _CONSTRUCTION_LOCK, _counting_tokenizer(module, TargetTokenCounter(target)):
        compressor = module.PromptCompressor(
            model_name=model_id,
            device_map=device,
            model_config={"trust_remote_code": False},
            use_llmlingua2=llmlingua2,
        )
    model = compressor.model
    if llmlingua2:
        compressor.model_name = _tokenizer_family(compressor.tokenizer, model_id)
    else:
        model = LegacyCacheModel(model)
    passes = ForwardMemo(model)
    compressor.model = passes
    return _Library(compressor, passes)


def _segment_size(n_tokens: int, iterative_size: int) -> int:
    """Segment length that tiles ``n_tokens`` in ``ceil(n / iterative_size)`` segments.

    llmlingua 0.2.2 never compresses a last segment shorter than ``iterative_size`` (its loop
    stops once the next segment end passes the text), which caps the reachable rate; with
    ``m`` segments of ``n // m`` tokens fewer than ``m`` tokens stay uncompressed.
    """
    if n_tokens <= iterative_size:
        return max(1, n_tokens)
    segments = -(-n_tokens // iterative_size)
    return n_tokens // segments


def _tokenizer_family(tokenizer: Any, model_id: str) -> str:
    """The name llmlingua 0.2.2 needs to split the classifier's tokens into words."""
    vocab = tokenizer.get_vocab()
    if "[CLS]" in vocab and any(token.startswith("##") for token in vocab):
        return _BERT_FAMILY
    if any(token.startswith("▁") for token in vocab):
        return _XLMR_FAMILY
    raise CompressorModelError(
        f"llmlingua2 needs a BERT WordPiece ('##' pieces, [CLS]) or XLM-RoBERTa SentencePiece "
        f"('▁' pieces) tokenizer, as llmlingua splits words only for those; {model_id!r} has "
        f"neither"
    )


def _factory(method: str) -> Callable[[TargetModel, Mapping[str, Any]], LinguaCompressor]:
    def make(target: TargetModel, options: Mapping[str, Any]) -> LinguaCompressor:
        options_type = _METHODS[method].options
        return LinguaCompressor(method, target, parse_options(options_type, options, method))

    make.__name__ = f"make_{method}"
    make.__doc__ = f"{_METHODS[method].summary} (the llmlingua package)."
    return make


def _capabilities(method: str) -> Capabilities:
    return Capabilities(Family.HARD, question_aware=_METHODS[method].question_aware,
                        budget_options=("rate", "target_tokens"))


make_llmlingua = register_compressor("llmlingua", _capabilities("llmlingua"))(
    _factory("llmlingua"))
make_longllmlingua = register_compressor("longllmlingua", _capabilities("longllmlingua"))(
    _factory("longllmlingua"))
make_llmlingua2 = register_compressor("llmlingua2", _capabilities("llmlingua2"))(
    _factory("llmlingua2"))
