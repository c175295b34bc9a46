"""Streaming reader of MRQA 2019 files (``.jsonl`` or ``.jsonl.gz``).

Format: line 1 is a header ``{"header": {"dataset": ..., "split": ...}}``; every further line
is one context ``{"id"?, "context", "qas": [{"qid", "question", "answers", ...}]}``. Other
fields (``context_tokens``, ``detected_answers``, ...) are ignored: the reader scores against
``answers`` because a share of MRQA's ``char_spans`` do not slice to the answer text.

MRQA contexts carry markup tokens (``[PAR]``, ``[DOC]``, ``[TLE]``, ``[SEP]``). The reader
keeps the text byte-faithful by default; ``clean_markup=True`` (or :func:`clean_mrqa_markup`)
turns them into plain text: paragraph/document breaks become blank lines, a title marker is
dropped and the title/body separator becomes a line break.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import zlib
from collections.abc import Generator, Iterator, Mapping
from contextlib import closing
from pathlib import Path
from typing import IO, Any

from bench.prepare.formats import MRQA_SOURCES, foreign_format
from bench.records import ContextSample, Question
from bench.substrate.errors import InputError

__all__ = [
    "MARKUP_TOKENS",
    "MRQAFormatError",
    "clean_mrqa_markup",
    "context_id_for",
    "open_text",
    "read_mrqa",
    "read_mrqa_header",
]

MARKUP_TOKENS = ("[PAR]", "[DOC]", "[TLE]", "[SEP]")

_BREAK = re.compile(r"\s*\[(?:PAR|DOC)\]\s*")
_SEPARATOR = re.compile(r"\s*\[SEP\]\s*")
_TITLE = re.compile(r"\s*\[TLE\]\s*")
_BLANKS = re.compile(r"\n{3,}")


_GZIP_MAGIC = b"\x1f\x8b"
_MRQA_LAYOUT = 'MRQA JSONL is a header line {"header": {...}}, then one context object per line'


class MRQAFormatError(InputError):
    """A malformed MRQA file; the message names the file, the line and the field."""

    def __init__(
        self, path: Path | str, line: int, field: str | None, problem: str, hint: str | None = None
    ) -> None:
        super().__init__(problem, path, line, field, hint)


def clean_mrqa_markup(text: str) -> str:
    """Replace MRQA markup tokens by plain-text layout (see the module docstring).

    Text without any markup token is returned unchanged.
    """
    if not any(token in text for token in MARKUP_TOKENS):
        return text
    text = _BREAK.sub("\n\n", text)
    text = _TITLE.sub("\n\n", text)
    text = _SEPARATOR.sub("\n", text)
    return _BLANKS.sub("\n\n", text).strip()


def context_id_for(context: str) -> str:
    """Stable id for a context that has none: ``ctx-`` + 16 hex digits of its SHA-1."""
    return "ctx-" + hashlib.sha1(context.encode("utf-8")).hexdigest()[:16]


def open_text(path: Path) -> IO[str]:
    """Open a UTF-8 text file, gunzipping it when it starts with the gzip magic bytes."""
    with path.open("rb") as probe:
        magic = probe.read(2)
    if magic == _GZIP_MAGIC:
        return gzip.open(path, "rt", encoding="utf-8")
    return path.open("r", encoding="utf-8")


def _open_bytes(path: Path) -> gzip.GzipFile | io.BufferedReader:
    with path.open("rb") as probe:
        magic = probe.read(2)
    return gzip.open(path, "rb") if magic == _GZIP_MAGIC else path.open("rb")


def _numbered_lines(path: Path) -> Generator[tuple[int, str], None, None]:
    """``(line number, text)`` of every line; each line is decoded on its own, so a bad
    byte or a broken gzip stream is reported on the line that holds it."""
    with _open_bytes(path) as handle:
        number = 0
        while True:
            number += 1
            try:
                raw = handle.readline()
            except (OSError, EOFError, zlib.error) as error:
                raise MRQAFormatError(
                    path, number, "<line>", f"unreadable ({error})",
                    "the file is truncated or corrupt; download or copy it again",
                ) from None
            if not raw:
                return
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                raise MRQAFormatError(
                    path, number, "<line>",
                    f"not UTF-8 (byte 0x{raw[error.start]:02x} at line offset {error.start})",
                    "convert the file to UTF-8",
                ) from None
            yield number, text.removeprefix("\ufeff") if number == 1 else text


def _parse_line(path: Path, number: int, raw: str) -> dict[str, Any]:
    try:
        obj = json.loads(raw)
    except json.JSONDecodeError as error:
        raise MRQAFormatError(
            path, number, "<line>", f"invalid JSON ({error.msg} at column {error.colno})",
            "each line of MRQA JSONL must be one complete JSON object",
        ) from None
    if not isinstance(obj, dict):
        raise MRQAFormatError(path, number, "<line>", f"expected a JSON object, got {_kind(obj)}")
    return obj


def _kind(value: object) -> str:
    return type(value).__name__ if value is not None else "null"


def _check_text(path: Path, number: int, field: str, text: str) -> str:
    """``text``, refused when it holds a lone surrogate (a JSON escape such as ``\\ud800``
    that is half of a UTF-16 pair: valid JSON, but no Unicode text)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise MRQAFormatError(
            path, number, field,
            f"a lone surrogate \\u{ord(text[error.start]):04x} at character {error.start}",
            "text must be valid Unicode: fix or remove that escape",
        ) from None
    return text


def _require(
    path: Path, number: int, obj: Mapping[str, Any], key: str, kind: type, where: str = ""
) -> Any:
    field = f"{where}{key}"
    if key not in obj:
        raise MRQAFormatError(path, number, field, "missing")
    value = obj[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise MRQAFormatError(path, number, field, f"expected {kind.__name__}, got {_kind(value)}")
    return _check_text(path, number, field, value) if isinstance(value, str) else value


def _optional_text(path: Path, number: int, obj: Mapping[str, Any], key: str) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise MRQAFormatError(path, number, key, f"expected str, got {_kind(value)}")
    return _check_text(path, number, key, value)


def _question(path: Path, number: int, index: int, qa: object) -> Question:
    where = f"qas[{index}]."
    if not isinstance(qa, dict):
        raise MRQAFormatError(path, number, f"qas[{index}]", f"expected object, got {_kind(qa)}")
    qid = _require(path, number, qa, "qid", str, where)
    question = _require(path, number, qa, "question", str, where)
    answers = _require(path, number, qa, "answers", list, where)
    if not answers:
        raise MRQAFormatError(path, number, f"{where}answers", "empty list")
    for k, answer in enumerate(answers):
        if not isinstance(answer, str):
            raise MRQAFormatError(
                path, number, f"{where}answers[{k}]", f"expected str, got {_kind(answer)}"
            )
        _check_text(path, number, f"{where}answers[{k}]", answer)
    return Question(qid=qid, question=question, answers=tuple(dict.fromkeys(answers)))


def _context(
    path: Path, number: int, obj: Mapping[str, Any], source: str, clean: bool
) -> ContextSample:
    context = _require(path, number, obj, "context", str)
    qas = _require(path, number, obj, "qas", list)
    questions = tuple(_question(path, number, k, qa) for k, qa in enumerate(qas))
    context_id = _optional_text(path, number, obj, "id")
    metadata: dict[str, Any] = {"line": number}
    benchmark = _optional_text(path, number, obj, "benchmark")
    if benchmark is not None:
        metadata["benchmark"] = benchmark
    return ContextSample(
        context_id=context_id or context_id_for(context),
        context=clean_mrqa_markup(context) if clean else context,
        questions=questions,
        source=source,
        metadata=metadata,
    )


def _not_mrqa(path: Path) -> MRQAFormatError | None:
    kind = foreign_format(path)
    if kind is None:
        return None
    return MRQAFormatError(
        path, 1, None, f"this is {kind}, not MRQA JSONL", f"use the MRQA version: {MRQA_SOURCES}"
    )


def _header(path: Path, first: tuple[int, str] | None) -> dict[str, Any]:
    if first is None:
        raise MRQAFormatError(path, 1, "header", "file is empty; expected a header line")
    if not first[1].strip():
        raise MRQAFormatError(path, 1, "header", "line 1 is blank", _MRQA_LAYOUT)
    try:
        obj = _parse_line(path, 1, first[1])
        if "header" not in obj:
            raise MRQAFormatError(path, 1, "header", "missing", _MRQA_LAYOUT)
        header: dict[str, Any] = _require(path, 1, obj, "header", dict)
    except MRQAFormatError as error:
        raise (_not_mrqa(path) or error) from None
    dataset = header.get("dataset")
    if dataset is not None and not isinstance(dataset, str):
        raise MRQAFormatError(path, 1, "header.dataset", f"expected str, got {_kind(dataset)}")
    if isinstance(dataset, str):
        _check_text(path, 1, "header.dataset", dataset)
    return header


def read_mrqa_header(path: Path | str) -> dict[str, Any]:
    """The header object of an MRQA file (its first line)."""
    path = Path(path)
    with closing(_numbered_lines(path)) as lines:
        return _header(path, next(lines, None))


def read_mrqa(path: Path | str, clean_markup: bool = False) -> Iterator[ContextSample]:
    """Yield one :class:`ContextSample` per context line, streaming.

    ``source`` is the header's ``dataset`` (file stem if absent); ``metadata`` holds the
    1-based ``line`` and, when the line has one, its ``benchmark`` label. A context without
    ``id`` gets :func:`context_id_for`. Answers are de-duplicated, order kept. Blank lines
    are skipped. Raises :class:`MRQAFormatError` naming file, line and field; a known
    non-MRQA file (HotpotQA, RACE or SQuAD original, a JSON array) is named as such.
    """
    path = Path(path)
    with closing(_numbered_lines(path)) as lines:
        header = _header(path, next(lines, None))
        source = header.get("dataset") or path.name.split(".")[0]
        for number, raw in lines:
            if raw.strip():
                obj = _parse_line(path, number, raw)
                yield _context(path, number, obj, source, clean_markup)
