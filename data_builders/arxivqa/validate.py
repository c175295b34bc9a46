"""Robust parsing of the model's JSON answer and validation of every QA pair."""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

from bench.prepare.answerability import answer_in_text, is_empty_answer, span_start

_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.DOTALL)
_QUOTES = "\"'“”‘’`"


@dataclass(frozen=True)
class QAPair:
    """A validated pair: the answer is ``context[start:end]`` exactly."""

    question: str
    answer: str
    start: int
    end: int


def _normalize(text: str) -> str:
    return " ".join(text.split())


def _as_pairs(value: Any) -> list[Any] | None:
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        if "question" in value:
            return [value]
        for inner in value.values():
            if isinstance(inner, list):
                return inner
    return None


def extract_pairs(text: str) -> list[Any] | None:
    """The list of pairs in a reply: plain JSON, fenced JSON, or JSON with prose around it.

    Returns None when no JSON list (or object holding one) can be found.
    """
    candidates = [match.group(1) for match in _FENCE.finditer(text)] + [text]
    decoder = json.JSONDecoder()
    for candidate in candidates:
        for index, char in enumerate(candidate):
            if char not in "[{":
                continue
            try:
                value, _ = decoder.raw_decode(candidate, index)
            except json.JSONDecodeError:
                continue
            pairs = _as_pairs(value)
            if pairs is not None:
                return pairs
    return None


def _clean_answer(answer: str) -> list[str]:
    base = _normalize(answer)
    stripped = base.strip(_QUOTES).strip()
    variants = [base, stripped, stripped.rstrip(".").strip()]
    return [v for i, v in enumerate(variants) if v and v not in variants[:i]]


def _span(answer: str, context: str) -> tuple[str, int] | None:
    """The first answer variant found verbatim in ``context`` on word boundaries, and where."""
    for variant in _clean_answer(answer):
        start = span_start(variant, context)
        if start is not None:
            return variant, start
    return None


def validate(raw_pairs: list[Any], context: str, rejected: Counter[str]) -> list[QAPair]:
    """Keep the pairs whose answer is a verbatim span of ``context`` (whitespace-normalised)
    on SQuAD-normalised word boundaries: "no" is not found inside "known", nor "3" in "31.8".

    Rejections are counted by reason: malformed_item, empty_question, empty_answer (blank,
    or only punctuation/articles), answer_not_in_context, answer_in_question (its words occur
    in the question), duplicate_question.
    """
    context = _normalize(context)
    accepted: list[QAPair] = []
    seen: set[str] = set()
    for item in raw_pairs:
        if (
            not isinstance(item, dict)
            or not isinstance(item.get("question", ""), str)
            or not isinstance(item.get("answer", ""), (str, int, float))
        ):
            rejected["malformed_item"] += 1
            continue
        question = _normalize(item.get("question", ""))
        answer = _normalize(str(item.get("answer", "")))
        if not question:
            rejected["empty_question"] += 1
            continue
        if is_empty_answer(answer):
            rejected["empty_answer"] += 1
            continue
        span = _span(answer, context)
        if span is None:
            rejected["answer_not_in_context"] += 1
            continue
        text, start = span
        if answer_in_text(text, question):
            rejected["answer_in_question"] += 1
            continue
        key = question.casefold()
        if key in seen:
            rejected["duplicate_question"] += 1
            continue
        seen.add(key)
        accepted.append(QAPair(question=question, answer=text, start=start, end=start + len(text)))
    return accepted
