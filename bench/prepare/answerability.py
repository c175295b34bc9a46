"""Whether a gold answer occurs in a text, on SQuAD-normalised word boundaries.

Texts are compared as the token sequences the SQuAD scorer sees
(:func:`bench.metrics.normalize_answer`, then whitespace split): an answer occurs when its
tokens are a contiguous run of the text's tokens. So the gold "no" is not in "known" and
"3" is not in "31.8" (which normalises to the one token "318"). An answer without any token
(blank, or only punctuation and articles) occurs nowhere: it cannot be scored.
"""

from __future__ import annotations

from collections.abc import Sequence

from bench.metrics import normalize_answer

__all__ = ["answer_in_text", "answer_tokens", "contains_run", "is_empty_answer", "span_start"]


def answer_tokens(text: str) -> tuple[str, ...]:
    """The SQuAD tokens of ``text``: normalised (lower case, no punctuation or articles)."""
    return tuple(normalize_answer(text).split())


def _tokens_uncached(text: str) -> tuple[str, ...]:
    # one-off prefixes and suffixes would only crowd the shared normalisation cache
    return tuple(normalize_answer.__wrapped__(text).split())


def is_empty_answer(answer: str) -> bool:
    """True for an answer with no SQuAD token (empty, whitespace, punctuation, articles)."""
    return not answer_tokens(answer)


def contains_run(tokens: Sequence[str], run: Sequence[str]) -> bool:
    """True when ``run`` (non-empty) is a contiguous subsequence of ``tokens``."""
    size = len(run)
    if size == 0:
        return False
    first = run[0]
    return any(
        tokens[i] == first and tuple(tokens[i : i + size]) == tuple(run)
        for i in range(len(tokens) - size + 1)
    )


def answer_in_text(answer: str, text: str) -> bool:
    """True when ``answer``'s SQuAD tokens occur as a contiguous run in ``text``'s."""
    return contains_run(answer_tokens(text), answer_tokens(answer))


def span_start(answer: str, text: str) -> int | None:
    """Start of the first verbatim occurrence of ``answer`` in ``text`` that sits on word
    boundaries (its tokens neither merge with nor split the tokens around it), else None.
    """
    tokens = answer_tokens(answer)
    if not tokens:
        return None
    start = text.find(answer)
    while start >= 0:
        end = start + len(answer)
        before = _tokens_uncached(text[:end])
        after = _tokens_uncached(text[start:])
        if before[len(before) - len(tokens) :] == tokens and after[: len(tokens)] == tokens:
            return start
        start = text.find(answer, start + 1)
    return None
