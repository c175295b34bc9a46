"""Lexical units for Selective Context, without spaCy: words, phrases and sentences.

Every unit is a character span ``(start, end)`` of the original text; together the units
cover every non-whitespace character, in order, so that keeping all of them gives the text
back (up to leading/trailing whitespace).

* ``token``: words ``\\w+`` (with inner ``-'’.`` joins such as "co-op", "U.S") and single
  punctuation characters.
* ``phrase``: a heuristic chunker in place of spaCy noun chunks. A phrase is a run of
  function words followed by content words, closed by punctuation: a new phrase starts at
  a function word that follows a content word, and after punctuation (which stays with the
  phrase it ends). "The game was played on February 7, 2016, at Levi's Stadium." gives
  "The game" / "was played" / "on February 7," / "2016," / "at Levi's Stadium.".
* ``sentence``: a regular-expression splitter: a sentence ends at ``.``, ``!`` or ``?``
  (plus closing quotes/brackets) followed by whitespace or the end. Abbreviations such as
  "Mr." therefore end a sentence.
"""

from __future__ import annotations

import re
from typing import Literal

from bench.substrate.errors import InputError

Unit = Literal["token", "phrase", "sentence"]
Span = tuple[int, int]

UNITS: tuple[Unit, ...] = ("token", "phrase", "sentence")

_WORD = re.compile(r"\w+(?:[-'’.]\w+)*|[^\w\s]")
_SENTENCE = re.compile(r"\S.*?(?:[.!?]+[\"'”’)\]]*(?=\s|$)|$)", re.DOTALL)

FUNCTION_WORDS = frozenset(
    (
        "a", "an", "the", "this", "that", "these", "those", "some", "any", "each", "every", "no",
        "all", "both", "either", "neither", "of", "in", "on", "at", "by", "for", "with", "from",
        "to", "into", "onto", "upon", "over", "under", "about", "above", "below", "between",
        "among", "through", "during", "before", "after", "since", "until", "against", "within",
        "without", "along", "across", "and", "or", "but", "nor", "so", "yet", "as", "than", "if",
        "because", "while", "although", "though", "whether", "is", "are", "was", "were", "be",
        "been", "being", "am", "do", "does", "did", "have", "has", "had", "will", "would", "shall",
        "should", "can", "could", "may", "might", "must", "it", "its", "he", "she", "they", "them",
        "his", "her", "their", "we", "us", "our", "you", "your", "i", "me", "my", "who", "whom",
        "whose", "which", "what", "where", "when", "why", "how", "there", "here", "not",
    )
)


def split_units(text: str, unit: Unit) -> list[Span]:
    """Character spans of the ``unit``-level units of ``text``, in order."""
    if unit == "token":
        return [match.span() for match in _WORD.finditer(text)]
    if unit == "phrase":
        return _phrases(text)
    if unit == "sentence":
        return [match.span() for match in _SENTENCE.finditer(text)]
    raise InputError(f"unit must be one of {', '.join(UNITS)}, got {unit!r}")


def _phrases(text: str) -> list[Span]:
    phrases: list[Span] = []
    current: list[Span] = []
    previous_is_content = False
    for span in split_units(text, "token"):
        word = text[span[0] : span[1]]
        is_punctuation = not (word[0].isalnum() or word[0] == "_")
        is_function = word.lower() in FUNCTION_WORDS
        if current and is_function and previous_is_content:
            phrases.append((current[0][0], current[-1][1]))
            current = []
        current.append(span)
        previous_is_content = not is_function and not is_punctuation
        if is_punctuation:
            phrases.append((current[0][0], current[-1][1]))
            current = []
    if current:
        phrases.append((current[0][0], current[-1][1]))
    return phrases
