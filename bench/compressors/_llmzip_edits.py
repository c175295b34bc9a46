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


def text_edits(decoded: str, text: str) -> bytes:
    """Serialised edits turning ``decoded`` into ``text`` (empty when they are equal)."""
    if decoded == text:
        return b""
    matcher = difflib.SequenceMatcher(None, decoded, text, autojunk=False)
    edits = [[start, end, text[first:last]]
             for tag, start, end, first, last in matcher.get_opcodes() if tag != "equal"]
    return json.dumps(edits, ensure_ascii=True, separators=(",", ":")).encode("utf-8")


def apply_text_edits(decoded: str, payload: bytes) -> str:
    """``decoded`` with the edits of ``payload`` applied."""
    if not payload:
        return decoded
    pieces: list[str] = []
    cursor = 0
    for start, end, replacement in json.loads(payload.decode("utf-8")):
        pieces.append(decoded[cursor:start])
        pieces.append(replacement)
        cursor = end
    pieces.append(decoded[cursor:])
    return "".join(pieces)
