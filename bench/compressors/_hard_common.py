"""Shared pieces of the hard (token-dropping) compressors: model checks, budgets, tolerances.

The per-context rate search is :mod:`bench.compressors._rate_search`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from bench.compressors._api import TargetModel
from bench.compressors.baselines import budget_extra, token_budget
from bench.substrate.errors import CompressbenchError, InputError

ModelKind = Literal["causal", "token_classification"]

INSTALL_HINT = "pip install 'compressbench[hard]'"

_CAUSAL_SUFFIXES = ("ForCausalLM", "LMHeadModel")
_CLASSIFIER_SUFFIX = "ForTokenClassification"
_KIND_WORDS = {"causal": "a causal language model", "token_classification": "a token classifier"}


class MissingDependencyError(CompressbenchError, ImportError):
    """An optional dependency of a compressor is not installed."""


class CompressorModelError(InputError):
    """The compressor model does not fit the method (wrong architecture or labels)."""


@dataclass(frozen=True)
class Budget:
    """The target-token budget of one context."""

    original_tokens: int
    keep_tokens: int
    requested_rate: float
    target_tokens: int | None = None

    @property
    def extra(self) -> dict[str, Any]:
        """What the record's ``extra`` notes about the budget (``target_tokens`` not below
        the context: see :data:`bench.compressors.baselines.TARGET_TOKENS_EXCEED_CONTEXT`)."""
        return budget_extra(self.original_tokens, self.target_tokens)

    @classmethod
    def for_context(
        cls, target: TargetModel, context: str, rate: float | None, target_tokens: int | None
    ) -> Budget:
        """Budget of ``context`` from ``rate`` or ``target_tokens`` (in TARGET tokens)."""
        original = target.count_tokens(context)
        keep = token_budget(original, rate, target_tokens)
        if original == 0:
            requested = 1.0
        elif target_tokens is not None:
            requested = keep / original
        else:
            requested = float(rate) if rate is not None else keep / original
        return cls(original, keep, requested, target_tokens)


def resolve_device(device: str | None, target: TargetModel) -> str:
    """``device`` if given, else the device of the target model (cpu without one)."""
    return device if device else str(target.device)


def model_kind(model_id: str) -> ModelKind | None:
    """Whether ``model_id`` (hub id or local path) is a causal LM or a token classifier.

    Read from the config's ``architectures``, else from its ``model_type``; None if neither
    says (e.g. a masked LM or an encoder without head).
    """
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_TOKEN_CLASSIFICATION_MAPPING_NAMES,
    )

    from bench.hub import load_from_hub

    config = load_from_hub(
        lambda: AutoConfig.from_pretrained(model_id, trust_remote_code=False),
        model_id, "compressor model", "compressor_model= in --model_args",
    )
    architectures: list[str] = list(getattr(config, "architectures", None) or [])
    if any(name.endswith(_CLASSIFIER_SUFFIX) for name in architectures):
        return "token_classification"
    if any(name.endswith(_CAUSAL_SUFFIXES) for name in architectures):
        return "causal"
    if architectures:
        return None
    if config.model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        return "causal"
    if config.model_type in MODEL_FOR_TOKEN_CLASSIFICATION_MAPPING_NAMES:
        return "token_classification"
    return None


def check_model_kind(model_id: str, expected: ModelKind, method: str) -> None:
    """Raise :class:`CompressorModelError` unless ``model_id`` is of the ``expected`` kind."""
    from transformers import AutoConfig

    found = model_kind(model_id)
    if found != expected:
        architectures = getattr(AutoConfig.from_pretrained(model_id), "architectures", None)
        what = _KIND_WORDS[found] if found else "neither a causal LM nor a token classifier"
        raise CompressorModelError(
            f"compressor {method!r} needs {_KIND_WORDS[expected]} as compressor_model, but "
            f"{model_id!r} is {what} (architectures={architectures})"
        )
    if expected == "token_classification":
        num_labels = AutoConfig.from_pretrained(model_id).num_labels
        if num_labels != 2:
            raise CompressorModelError(
                f"compressor {method!r} needs a two-label (drop/keep) token classifier, but "
                f"{model_id!r} has num_labels={num_labels}"
            )


# The 95th percentile of |achieved - requested| rate (TARGET tokens) each method stays
# within on real SQuAD contexts (GPT-2 target tokenizer, requested rates 0.5/0.25/0.1).
# Asserted by tests/bench/compressors/test_rate_adherence.py and printed by
# benchmarks/bench_hard_compressors.py. Sentences are too coarse for any rate: the budget is
# never exceeded, so the error is at most the requested rate (a one-sentence context longer
# than the budget compresses to nothing); measured mean |error| 0.07-0.10.
RATE_TOLERANCES: dict[str, float] = {
    "selective_context:token": 0.03,
    "selective_context:phrase": 0.05,
    "selective_context:sentence": 0.50,
    "llmlingua": 0.05,
    "longllmlingua": 0.05,
    "llmlingua2": 0.05,
}
