"""Achieved vs requested rate on real SQuAD contexts, in GPT-2 (target) tokens."""

import statistics
from pathlib import Path
from typing import Any

import pytest

from bench.compressors._api import CompressionRequest, TargetModel
from bench.compressors._hard_common import RATE_TOLERANCES

from .conftest import GPT2_TOKENIZER, SQUAD_DEV, read_squad_contexts

pytestmark = pytest.mark.skipif(
    not (SQUAD_DEV.is_file() and GPT2_TOKENIZER.is_dir()),
    reason="../shared/data (MRQA SQuAD dev and the GPT-2 tokenizer) is not available",
)
N_CONTEXTS = 24
RATES = (0.5, 0.25, 0.1)


@pytest.fixture(scope="module")
def squad_models(tmp_path_factory):
    """Tiny compressors whose tokenizers are trained on other SQuAD contexts than measured."""
    from bench.compressors._hard_tiny import build_tiny_token_classifier
    from bench.tiny import build_tiny_model

    texts = [context for context, _ in read_squad_contexts(60)]
    root = tmp_path_factory.mktemp("squad_models")
    return {"causal": build_tiny_model(texts, root / "causal", seed=0),
            "classifier": build_tiny_token_classifier(texts, root / "classifier", seed=0)}


@pytest.fixture(scope="module")
def gpt2_target():
    from transformers import AutoTokenizer

    return TargetModel("gpt2", AutoTokenizer.from_pretrained(str(GPT2_TOKENIZER)))


@pytest.fixture(scope="module")
def squad_pairs():
    return read_squad_contexts(N_CONTEXTS, skip=60)


def build(method: str, target: TargetModel, models: dict[str, Path], rate: float) -> Any:
    from bench.compressors.llmlingua_family import (
        make_llmlingua,
        make_llmlingua2,
        make_longllmlingua,
    )
    from bench.compressors.selective_context import make_selective_context

    if method.startswith("selective_context:"):
        return make_selective_context(target, {"compressor_model": str(models["causal"]),
                                               "unit": method.split(":")[1], "rate": rate})
    factory = {"llmlingua": make_llmlingua, "longllmlingua": make_longllmlingua,
               "llmlingua2": make_llmlingua2}[method]
    model = models["classifier" if method == "llmlingua2" else "causal"]
    return factory(target, {"compressor_model": str(model), "rate": rate})


@pytest.mark.slow
@pytest.mark.parametrize("method", sorted(RATE_TOLERANCES))
def test_achieved_rate_within_stated_tolerance(method, gpt2_target, squad_models, squad_pairs):
    tolerance = RATE_TOLERANCES[method]
    for rate in RATES:
        compressor = build(method, gpt2_target, squad_models, rate)
        results = compressor.compress([CompressionRequest(c, question=q) for c, q in squad_pairs])
        errors = sorted(abs(r.stats.achieved_rate - rate) for r in results)
        assert all(r.stats.requested_rate == rate for r in results)
        p95 = errors[round(0.95 * (len(errors) - 1))]
        assert p95 <= tolerance, (method, rate, errors)
        if not method.endswith(":sentence"):
            mean = statistics.fmean(r.stats.achieved_rate for r in results)
            assert abs(mean - rate) <= tolerance / 2, (method, rate, mean)
