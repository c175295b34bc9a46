"""Which soft compressors a served model answers, and the served model loaded here for them.

A compressor whose registration declares ``prompt_embeds`` is answered by
``compressed_completions`` from prompt embeddings (:mod:`bench.lmeval.api_embeds`); its
compressions and decoder input are computed here, on ``pretrained=`` loaded as lm-eval's
``hf`` backend loads it for ``--model compressed``. Every other soft compressor (key/value
caches, decoders of their own), and every soft compressor through the chat API (which takes no
laid-out prompt as embeddings), is refused in one line that names the served ones.
"""

from __future__ import annotations

from typing import Any

from bench.compressors import (
    Family,
    PromptEmbeddingsDecoder,
    TargetModel,
    available_compressors,
    build_compressor,
    capabilities_of,
)
from bench.substrate.errors import InputError


class SoftCompressorRefused(InputError):
    """A soft compressor was asked to answer through an API that cannot take its output."""


class PromptEmbedsUnsupported(InputError):
    """A request that cannot be answered from prompt embeddings."""


_HANDS_OVER = {
    Family.SOFT_KV: "a key/value cache",
    Family.KV_EVICTION: "a pruned key/value cache",
    Family.SOFT_EMBEDDINGS: "vectors for a decoder other than the target model as it is",
}


def served_from_embeddings() -> list[str]:
    """The compressors that declare ``prompt_embeds`` (a plug-in that fails to load is left
    out: this list only goes into messages)."""
    names = []
    for name in available_compressors():
        try:
            if capabilities_of(name).prompt_embeds:
                names.append(name)
        except Exception:  # a broken plug-in must not hide the message
            continue
    return names


def answers_from_embeddings(name: str, model: str, chat: bool) -> bool:
    """Whether compressor ``name`` is answered from prompt embeddings (else it gives text);
    a soft compressor that cannot be served this way is refused in one line."""
    capabilities = capabilities_of(name)
    family = capabilities.family
    if not family.feeds_the_model:
        return False
    served = ", ".join(served_from_embeddings()) or "none"
    if chat:
        raise SoftCompressorRefused(
            f"{model}: compressor {name!r} is a soft compressor ({family.value}) and a chat "
            "API does not take a laid-out prompt as embeddings (vLLM 0.11's takes none, later "
            "ones only inside their chat template): use --model compressed_completions, which "
            f"serves {served} from prompt embeddings, or --model compressed with pretrained=...")
    if not capabilities.prompt_embeds:
        raise SoftCompressorRefused(
            f"{model}: compressor {name!r} hands the target model "
            f"{_HANDS_OVER.get(family, 'what a server cannot take')} ({family.value}), which "
            f"a served model cannot take; the soft compressors served from prompt embeddings "
            f"are {served}; or use --model compressed with pretrained=...")
    return True


def build_embeddings_compressor(name: str, target: TargetModel, options: dict[str, Any]
                                ) -> Any:
    """Compressor ``name``, which must give its decoder input as prompt embeddings."""
    compressor = build_compressor(name, target, options)
    if not isinstance(compressor, PromptEmbeddingsDecoder):
        raise TypeError(f"compressor {name!r} declares prompt_embeds but does not implement "
                        "PromptEmbeddingsDecoder")
    return compressor


def load_served_model(pretrained: str, hf_args: dict[str, Any]) -> Any:
    """The served model loaded here as lm-eval's ``hf`` backend loads it for ``--model
    compressed`` (the same tokenizer set-up, dtype, window); one line for a hub id that
    cannot be loaded."""
    from lm_eval.models.huggingface import HFLM

    from bench.hub import load_from_hub

    revision = hf_args.get("revision")
    return load_from_hub(lambda: HFLM(pretrained=pretrained, **hf_args), pretrained,
                         "target model", "pretrained= in --model_args",
                         revision=None if revision in (None, "main") else str(revision))


__all__ = [
    "PromptEmbedsUnsupported",
    "SoftCompressorRefused",
    "answers_from_embeddings",
    "build_embeddings_compressor",
    "load_served_model",
    "served_from_embeddings",
]
