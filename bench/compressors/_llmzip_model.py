"""Next-token probabilities of a causal LM, as the llmzip codec consumes them.

Token ``t`` of a text is predicted from ``[start] + tokens[a:t]``, where ``start`` is the
tokenizer's BOS (EOS where it has none) and ``a`` moves forward when the context would
outgrow the window: when predicting token ``t`` would need more than ``window`` positions,
``a`` becomes ``t - window // 2`` and the model restarts from those tokens.

Encoder and decoder must see bit-identical probabilities, so :class:`SequentialPredictor`
computes them the one way a decoder can: one token at a time through the key/value cache,
with the same restarts; the float32 logits become float64 probabilities by one fixed
softmax. :func:`parallel_probabilities` gives the same conditional distributions from one
forward pass per window segment (up to float rounding): fast, for measuring code lengths
that nobody decodes.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from bench.substrate.errors import InputError

Probabilities = npt.NDArray[np.float64]
_CONVERT_ROWS = 64


def start_token(tokenizer: Any) -> int:
    """The token every text is predicted after: BOS, else EOS."""
    for token in (tokenizer.bos_token_id, tokenizer.eos_token_id):
        if token is not None:
            return int(token)
    raise InputError("llmzip: the tokenizer defines neither a BOS nor an EOS token; the code "
                     "needs one to predict a text's first token")


def model_window(model: Any, requested: int | None) -> int:
    """Positions the model may see at once: ``requested``, else its configured maximum."""
    config = model.config
    text_config = getattr(config, "get_text_config", lambda: config)()
    limit = getattr(text_config, "max_position_embeddings", None)
    window = requested if requested is not None else limit
    if window is None:
        raise InputError("llmzip: the model config has no max_position_embeddings; "
                         "give the window option (positions the model may see at once)")
    if window < 4:
        raise InputError(f"llmzip: window must be at least 4 positions, got {window}")
    if limit is not None and window > int(limit):
        raise InputError(f"llmzip: window={window} exceeds the model's "
                         f"max_position_embeddings={limit}")
    return int(window)


def to_probabilities(logits: torch.Tensor) -> Probabilities:
    """Rows of logits -> float64 probabilities (from the float32 values, one fixed recipe)."""
    values = logits.detach().float().cpu().numpy().astype(np.float64)
    values -= values.max(axis=-1, keepdims=True)
    np.exp(values, out=values)
    values /= values.sum(axis=-1, keepdims=True)
    return values


def _step_arguments(model: Any) -> tuple[str, dict[str, int]]:
    """The forward argument that takes a key/value cache (renamed in recent transformers),
    and the one that keeps only the last position's logits where the model has it."""
    parameters = inspect.signature(model.forward).parameters
    cache = "cache" if "cache" in parameters else "past_key_values"
    return cache, ({"logits_to_keep": 1} if "logits_to_keep" in parameters else {})


class SequentialPredictor:
    """Probabilities of each next token, fed one known token at a time."""

    def __init__(self, model: Any, start: int, window: int) -> None:
        self.model = model
        self.start = start
        self.window = window
        self.keep = window // 2
        self._cache_argument, self._last_only = _step_arguments(model)
        self._device = next(model.parameters()).device
        self._history: list[int] = []
        self._begin = 0
        self._cache: Any = None

    def first(self) -> Probabilities:
        """Distribution of the first token (a fresh text)."""
        self._history = []
        self._begin = 0
        return self._restart()

    def after(self, token: int) -> Probabilities:
        """Distribution of the next token once ``token`` is known."""
        self._history.append(int(token))
        position = len(self._history)
        if 1 + position - self._begin > self.window:
            self._begin = position - self.keep
            return self._restart()
        return self._forward([int(token)], self._cache)

    def _restart(self) -> Probabilities:
        return self._forward([self.start, *self._history[self._begin:]], None)

    @torch.no_grad()
    def _forward(self, ids: Sequence[int], cache: Any) -> Probabilities:
        inputs = torch.tensor([list(ids)], dtype=torch.long, device=self._device)
        output = self.model(input_ids=inputs, use_cache=True, **self._last_only,
                            **{self._cache_argument: cache})
        self._cache = output.past_key_values
        return to_probabilities(output.logits[0, -1])


def segment_starts(n_tokens: int, window: int) -> list[tuple[int, int, int]]:
    """``(begin, first, stop)``: tokens ``first..stop-1`` are predicted from
    ``[start] + tokens[begin:t]``, the same contexts :class:`SequentialPredictor` uses."""
    segments: list[tuple[int, int, int]] = []
    begin, first = 0, 0
    keep = window // 2
    while first < n_tokens:
        stop = min(n_tokens, begin + window)
        segments.append((begin, first, stop))
        first = stop
        begin = first - keep
    return segments


@torch.no_grad()
def parallel_probabilities(model: Any, start: int, window: int,
                           ids: Sequence[int]) -> Iterator[Probabilities]:
    """The distributions of ``ids[0..n-1]`` in order, as consecutive blocks of rows."""
    device = next(model.parameters()).device
    for begin, first, stop in segment_starts(len(ids), window):
        inputs = torch.tensor([[start, *ids[begin:stop - 1]]], dtype=torch.long, device=device)
        logits = model(input_ids=inputs, use_cache=False).logits[0, first - begin:]
        for row in range(0, logits.shape[0], _CONVERT_ROWS):
            yield to_probabilities(logits[row:row + _CONVERT_ROWS])
