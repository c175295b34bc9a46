"""The edits that make a tokenizer's decoded string equal the text it was given.

Some tokenizers do not round-trip (``decode(encode(text)) != text``: SentencePiece drops a
leading space, some normalise whitespace or map unknown characters to ``<unk>``). The llmzip
code then carries these edits after the tokens, so the decoder restores the text exactly.
Format: JSON ``[[start, end, replacement], ...]`` (ASCII-escaped, UTF-8 bytes): replace
``decoded[start:end]`` by ``replacement``, left to right, on the decoded string.
"""

from __future__ import annotations

import difflib
import json
from typing import Any


class CorruptCodeError(ValueError):
    """An llmzip code that does not decode to a text: its bits were changed or cut."""


def text_edits(decoded: str, text: str) -> bytes:
    """Serialised edits turning ``decoded`` into ``text`` (empty when they are equal)."""
    if decoded == text:
        return b""
    matcher = difflib.SequenceMatcher(None, decoded, text, autojunk=False)
    edits = [[start, end, text[first:last]]
             for tag, start, end, first, last in matcher.get_opcodes() if tag != "equal"]
    return json.dumps(edits, ensure_ascii=True, separators=(",", ":")).encode("utf-8")


def apply_text_edits(decoded: str, payload: bytes) -> str:
    """``decoded`` with the edits of ``payload`` applied.

    Raises :class:`CorruptCodeError` when ``payload`` is not edits of ``decoded``.
    """
    if not payload:
        return decoded
    pieces: list[str] = []
    cursor = 0
    for start, end, replacement in _parsed_edits(payload):
        if not cursor <= start <= end <= len(decoded):
            raise CorruptCodeError(f"the edit [{start}, {end}] does not fit a decoded text of "
                                   f"{len(decoded)} characters after position {cursor}")
        pieces.append(decoded[cursor:start])
        pieces.append(replacement)
        cursor = end
    pieces.append(decoded[cursor:])
    return "".join(pieces)


def _parsed_edits(payload: bytes) -> list[tuple[int, int, str]]:
    try:
        edits: Any = json.loads(payload.decode("ascii"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CorruptCodeError(f"its {len(payload)} edit bytes are not an edit list "
                               f"({error.__class__.__name__})") from None
    if not isinstance(edits, list) or not all(_is_edit(edit) for edit in edits):
        raise CorruptCodeError(f"its {len(payload)} edit bytes are not an edit list "
                               "of [start, end, replacement]")
    return [(start, end, replacement) for start, end, replacement in edits]


def _is_edit(edit: Any) -> bool:
    return (isinstance(edit, list) and len(edit) == 3
            and all(type(bound) is int for bound in edit[:2]) and isinstance(edit[2], str))
