"""A non-neural extractive reader: a transparent yardstick for hard compressors.

It is NOT a language model. For a question it picks the context sentence sharing the most
(inverse-frequency weighted) content words with the question, then answers with the longest
run of words of that sentence that the question does not contain (a run with a number for
when/how-many questions). A compressor that deletes
the answer makes it fail, which is what the demo needs to show on a CPU in seconds.
"""

from __future__ import annotations

import math
import re
from collections import Counter

_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_WORD = re.compile(r"[\w'-]+|[^\w\s]")
STOPWORDS = frozenset(
    "a an the of in on at to for from by with and or is was were are be been which who whom "
    "what when where why how did does do that this these those it its as into than then".split()
)
MAX_ANSWER_WORDS = 8
_NUMERIC_QUESTION = re.compile(r"\s*(when|how (many|much|long|old|far)|what year|in what year)\b",
                               re.IGNORECASE)


def _content(words: list[str]) -> set[str]:
    return {w.lower() for w in words if w.isalnum() and w.lower() not in STOPWORDS}


def best_sentence(context: str, question: str) -> str:
    """The sentence with the highest idf-weighted overlap with the question's content words."""
    sentences = [s for s in _SENTENCE.split(context.strip()) if s]
    if not sentences:
        return ""
    tokenised = [_WORD.findall(s) for s in sentences]
    document_frequency = Counter(w for words in tokenised for w in _content(words))
    wanted = _content(_WORD.findall(question))

    def score(words: list[str]) -> float:
        shared = _content(words) & wanted
        return sum(math.log(1 + len(sentences) / document_frequency[w]) for w in shared)

    best = max(range(len(sentences)), key=lambda i: (score(tokenised[i]), -i))
    return sentences[best]


def extract_answer(context: str, question: str) -> str:
    """Longest run of sentence words absent from the question, trimmed of stopwords."""
    sentence_words = _WORD.findall(best_sentence(context, question))
    asked = {w.lower() for w in _WORD.findall(question)}
    runs: list[list[str]] = [[]]
    for word in sentence_words:
        if word.lower() in asked or not (word.isalnum() or word in "-'"):
            runs.append([])
        else:
            runs[-1].append(word)
    trimmed = [_trim(run) for run in runs]
    if _NUMERIC_QUESTION.match(question):
        numeric = [run for run in trimmed if any(w[0].isdigit() for w in run)]
        trimmed = numeric or trimmed
    longest = max(trimmed, key=len, default=[])
    return " ".join(longest[:MAX_ANSWER_WORDS])


def _trim(run: list[str]) -> list[str]:
    start, end = 0, len(run)
    while start < end and run[start].lower() in STOPWORDS:
        start += 1
    while end > start and run[end - 1].lower() in STOPWORDS:
        end -= 1
    return run[start:end]
