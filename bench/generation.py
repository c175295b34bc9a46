"""Generation settings shared by every decoding path."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class GenerationSettings:
    """Greedy decoding settings of one request (from lm-eval's ``gen_kwargs``)."""

    max_new_tokens: int = 46
    until: tuple[str, ...] = field(default_factory=tuple)

    def cut_at_stop(self, text: str) -> str:
        """``text`` up to the first stop string, as lm-eval's HF backend does."""
        for stop in self.until:
            if stop and stop in text:
                text = text.split(stop, 1)[0]
        return text


@dataclass(frozen=True)
class GenerationOutput:
    """One generated answer with its cost."""

    text: str
    generated_tokens: int
    seconds: float
    ttft_seconds: float


@dataclass(frozen=True)
class DecoderPrompt:
    """The uncompressed parts of a prompt around the context.

    ``kind`` is "qa" or "regeneration"; ``prefix`` is the rendered prompt before the context
    (instruction), ``suffix`` the rendered prompt after it (question and answer cue);
    ``question`` is the raw question for QA tasks.
    """

    kind: str
    prefix: str
    suffix: str
    question: str | None = None


def eos_token_ids(tokenizer: Any, model: Any) -> list[int]:
    """The ids that end a model's answer: the tokenizer's EOS and every id the model's
    generation config lists as ``eos_token_id`` (one id, or several: chat models often end
    a turn with one token and a text with another). Empty when neither names one."""
    ids: set[int] = set()
    if getattr(tokenizer, "eos_token_id", None) is not None:
        ids.add(int(tokenizer.eos_token_id))
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if isinstance(configured, int):
        ids.add(configured)
    elif isinstance(configured, list | tuple):
        ids.update(int(i) for i in configured)
    return sorted(ids)
