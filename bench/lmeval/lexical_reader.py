"""A non-neural extractive reader: a transparent yardstick for hard compressors.

It is NOT a language model. For a question it picks the context sentence sharing the most
(inverse-frequency weighted, prefix-matched) content words with the question, then answers
with a short span of that sentence made of words the question does not contain, preferring
spans next to the matched words and of the expected type (a number for when/how-many
questions, capitalised words for who/where/which). A compressor that deletes the answer makes
it fail, which is what the demo needs to show on a CPU in seconds.
"""

from __future__ import annotations

import math
import re
from collections import Counter

_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_WORD = re.compile(r"[\w'-]+|[^\w\s]")
_STOPWORD_TEXT = """
a an the of in on at to for from by with and or is was were are be been which who whom what
when where why how did does do that this these those it its as into than then her his their
she he they there
"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())
MAX_ANSWER_WORDS = 5
_NUMERIC = re.compile(r"\s*(when|how (many|much|long|old|far)|(in )?what year|in which year)\b",
                      re.IGNORECASE)
_NAMED = re.compile(r"\s*(who|whom|where|which|in which|what is the name|what was the name)\b",
                    re.IGNORECASE)
_STEM = 5


def _stem(word: str) -> str:
    return word.lower()[:_STEM]


def _content(words: list[str]) -> set[str]:
    return {_stem(w) for w in words if w.isalnum() and w.lower() not in STOPWORDS}


def best_sentence(context: str, question: str) -> str:
    """The sentence with the highest idf-weighted overlap with the question's content words."""
    sentences = [s for s in _SENTENCE.split(context.strip()) if s]
    if not sentences:
        return ""
    tokenised = [_WORD.findall(s) for s in sentences]
    document_frequency = Counter(w for words in tokenised for w in _content(words))
    wanted = _content(_WORD.findall(question))
    numeric = bool(_NUMERIC.match(question))

    def score(index: int) -> float:
        shared = _content(tokenised[index]) & wanted
        overlap = sum(math.log(1 + len(sentences) / document_frequency[w]) for w in shared)
        has_number = any(w[0].isdigit() for w in tokenised[index])
        return overlap + (0.5 if numeric and has_number else 0.0)

    return sentences[max(range(len(sentences)), key=lambda i: (score(i), -i))]


def _candidates(words: list[str], asked: set[str]) -> list[tuple[int, int]]:
    """Spans ``[start, end)`` of up to MAX_ANSWER_WORDS words absent from the question."""
    spans = []
    for start in range(len(words)):
        for end in range(start + 1, min(len(words), start + MAX_ANSWER_WORDS) + 1):
            inner = words[start:end]
            if any(not w.isalnum() or _stem(w) in asked for w in inner):
                break
            if inner[0].lower() in STOPWORDS or inner[-1].lower() in STOPWORDS:
                continue
            spans.append((start, end))
    return spans


def extract_answer(context: str, question: str) -> str:
    """A short span of the best sentence: typed, close to the question's words, not in it."""
    words = _WORD.findall(best_sentence(context, question))
    asked = {_stem(w) for w in _WORD.findall(question)}
    anchors = [i for i, w in enumerate(words) if w.isalnum() and _stem(w) in asked
               and w.lower() not in STOPWORDS]
    numeric, named = bool(_NUMERIC.match(question)), bool(_NAMED.match(question))

    def score(span: tuple[int, int]) -> float:
        inner = words[span[0]:span[1]]
        distance = min((min(abs(a - span[0]), abs(a - span[1] + 1)) for a in anchors),
                       default=len(words))
        typed = 0.0
        if numeric:
            typed = 3.0 if any(w[0].isdigit() for w in inner) else -3.0
        elif named:
            capitalised = sum(w[0].isupper() for w in inner)
            typed = capitalised - 0.7 * (len(inner) - capitalised) - (2.0 if not capitalised else 0)
        return typed - 0.3 * distance + 0.1 * len(inner)

    spans = _candidates(words, asked)
    if not spans:
        return ""
    start, end = max(spans, key=lambda s: (score(s), -s[0]))
    return " ".join(words[start:end])
