"""Streaming readers for the file sources: the Kaggle bulk snapshot and JSONL exports.

Both read one line at a time (plain or gzip) so memory stays flat whatever the file size.
Lines are parsed by ``orjson``; a line it refuses goes through the standard library, which
names the problem (and accepts what it alone allows, such as ``NaN``). Text that is already
clean (printable, single spaces, no space at either end) is kept as it is.
Every record is turned into a :class:`Paper` whose date is the FIRST version's submission
date; a malformed record (bad JSON, bytes that are not UTF-8, a missing field) raises
:class:`BadRecordError` naming file, line and field, or is counted and skipped when the
caller asks for it. A gzip stream that breaks off is reported on the line where it broke;
skipping keeps the lines before it and counts it under :data:`TRUNCATED`.
"""

from __future__ import annotations

import gzip
import io
import json
import re
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from datetime import date
from pathlib import Path
from typing import Any

import orjson

from bench.substrate.errors import InputError
from data_builders.arxiv.records import (
    Paper,
    normalize_whitespace,
    parse_timestamp,
    split_id,
)
from data_builders.arxiv.records import _rfc2822_gmt_date as rfc2822_gmt_date

RecordParser = Callable[[Mapping[str, Any], Path, int], Paper]

# Faster than ``"  " in text`` on text with a space every few characters.
_DOUBLE_SPACE = re.compile("  ")
# Shorter text is split and joined at once: the shortcut's scans would cost as much.
_SHORT = 160
# Dates of the snapshot's ``created`` timestamps, per day (at most this many days kept).
_DAYS: dict[str, date] = {}
_MAX_DAYS = 100_000
# ``created`` with the day before eight characters of time (no whitespace) and `` GMT``.
_CREATED = re.compile(r"(.*) \S{8} GMT", re.DOTALL)


class BadRecordError(InputError):
    """An input record that cannot be used, located by file, line and field."""

    def __init__(self, path: Path | str, line: int, field: str, reason: str) -> None:
        super().__init__(reason, path, line, field)


def clean_text(value: str) -> str:
    """:func:`normalize_whitespace`, by a shortcut for ASCII text broken only by newlines.

    Stripped, with newlines made spaces, ASCII text holding none of the other characters
    ``str.split`` breaks at and no double space is already normal (a few scans in C, where
    splitting and joining builds an object per word).
    """
    if len(value) > _SHORT and value.isascii():
        text = value.strip().replace("\n", " ")
        if ("\t" not in text and "\r" not in text and "\x0b" not in text and "\x0c" not in text
                and "\x1c" not in text and "\x1d" not in text and "\x1e" not in text
                and "\x1f" not in text and _DOUBLE_SPACE.search(text) is None):
            return text
    return normalize_whitespace(value)


def _text(value: Any, path: Path, line: int, name: str) -> str:
    """Field ``name`` (``value``, not None) cleaned: a string that is not blank."""
    if not isinstance(value, str):
        raise BadRecordError(path, line, name, f"expected a string, got {type(value).__name__}")
    cleaned = clean_text(value)
    if not cleaned:
        raise BadRecordError(path, line, name, "empty")
    return cleaned


def _required_text(record: Mapping[str, Any], path: Path, line: int, name: str) -> str:
    """Field ``name`` cleaned (:func:`_text`, inlined: it runs twice per record)."""
    value = record.get(name)
    if isinstance(value, str):
        cleaned = clean_text(value)
        if cleaned:
            return cleaned
    if value is None:
        raise BadRecordError(path, line, name, "missing")
    return _text(value, path, line, name)


def _text_field(record: Mapping[str, Any], path: Path, line: int, *names: str) -> str:
    """The first of the fields ``names`` that is present, cleaned."""
    for name in names:
        value = record.get(name)
        if value is not None:
            return _text(value, path, line, name)
    raise BadRecordError(path, line, names[0], "missing")


def _categories(record: Mapping[str, Any], path: Path, line: int) -> tuple[str, ...]:
    value = record.get("categories")
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(value.split())
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return tuple(value)
    raise BadRecordError(path, line, "categories", "expected a string or a list of strings")


# The usual version labels, looked up instead of parsed.
_VERSION_NUMBERS = {f"v{number}": number for number in range(1, 100)}


def _version_number(value: Any, path: Path, line: int) -> int:
    """The number of a version label such as ``"v2"``."""
    label = str(value)
    if not (label.startswith("v") and label[1:].isdecimal()):
        raise BadRecordError(path, line, "versions", f"bad version label {label!r}")
    return int(label[1:])


def _snapshot_v1_date(record: Mapping[str, Any], path: Path, line: int) -> tuple[Any, int]:
    """(date of the last entry labelled v1, highest version number)."""
    versions = record.get("versions")
    if not isinstance(versions, list) or not versions:
        raise BadRecordError(path, line, "versions", "missing or empty")
    first: str | None = None
    highest = 0
    for entry in versions:
        created = entry.get("created") if isinstance(entry, dict) else None
        if not isinstance(created, str):
            raise BadRecordError(path, line, "versions", f"bad entry {entry!r}")
        label = entry.get("version", "")
        number = _VERSION_NUMBERS.get(label) if isinstance(label, str) else None
        if number is None:
            number = _version_number(label, path, line)
        if number > highest:
            highest = number
        if number == 1:
            first = created
    if first is None:
        raise BadRecordError(path, line, "versions", "no v1 entry")
    try:
        return _created_date(first), highest
    except ValueError as error:
        raise BadRecordError(path, line, "versions[v1].created", str(error)) from error


def _created_date(created: str) -> date:
    """``parse_timestamp(created)``, remembered per day for ``Wdy, D Mon YYYY hh:mm:ss GMT``.

    Where its RFC 2822 shortcut gives the date, ``parse_timestamp`` reads only the words
    before the time, so the text before `` hh:mm:ss GMT`` (any eight characters that hold
    no whitespace) is the key.
    """
    shape = _CREATED.fullmatch(created)
    if shape is None:
        return parse_timestamp(created)
    day = shape[1]
    known = _DAYS.get(day)
    if known is None:
        known = rfc2822_gmt_date(created)
        if known is None:
            return parse_timestamp(created)
        if len(_DAYS) < _MAX_DAYS:
            _DAYS[day] = known
    return known


def parse_snapshot_record(record: Mapping[str, Any], path: Path, line: int) -> Paper:
    """A Kaggle ``arxiv-metadata-oai-snapshot`` record; the date is v1's ``created``."""
    raw_id = record.get("id")
    paper_id = raw_id.strip() if isinstance(raw_id, str) else ""
    if not paper_id:
        raise BadRecordError(path, line, "id", "missing or not a string")
    published, version = _snapshot_v1_date(record, path, line)
    title = _required_text(record, path, line, "title")
    abstract = _required_text(record, path, line, "abstract")
    # Positional: a few per cent faster than keywords on this path.
    return Paper(paper_id, title, abstract, published, _categories(record, path, line), version)


def parse_jsonl_record(record: Mapping[str, Any], path: Path, line: int) -> Paper:
    """A JSONL record with ``published`` (v1 submission time) and ``id`` or ``link``."""
    raw_id = record.get("id") or record.get("link") or record.get("entry_id")
    if not isinstance(raw_id, str) or not raw_id.strip():
        raise BadRecordError(path, line, "id", "missing (need 'id' or 'link')")
    try:
        paper_id, version = split_id(raw_id)
    except ValueError as error:
        raise BadRecordError(path, line, "id", str(error)) from error
    published = record.get("published")
    if not isinstance(published, str):
        raise BadRecordError(path, line, "published", "missing or not a string")
    try:
        published_date = parse_timestamp(published)
    except ValueError as error:
        raise BadRecordError(path, line, "published", str(error)) from error
    return Paper(
        id=paper_id,
        title=_text_field(record, path, line, "title"),
        text=_text_field(record, path, line, "abstract", "summary", "text"),
        published=published_date,
        categories=_categories(record, path, line),
        version=version,
    )


_GZIP_MAGIC = b"\x1f\x8b"
TRUNCATED = "truncated_or_corrupt_input"
"""Count key: the file could not be read to its end (a truncated or corrupt gzip)."""


def _open_bytes(path: Path) -> gzip.GzipFile | io.BufferedReader:
    with path.open("rb") as probe:
        magic = probe.read(2)
    return gzip.open(path, "rb") if magic == _GZIP_MAGIC else path.open("rb")


def _decoded(path: Path, number: int, raw: bytes) -> Any | BadRecordError:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        byte = raw[error.start]
        reason = f"not UTF-8 (byte 0x{byte:02x} at line offset {error.start})"
        return BadRecordError(path, number, "<line>", reason)
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        return BadRecordError(path, number, "<line>", f"invalid JSON ({error.msg})")


def iter_papers(
    path: Path, parser: RecordParser, skip_bad: bool, counts: Counter[str]
) -> Iterator[Paper]:
    """Stream the papers of ``path``; bad lines raise, or are skipped and counted in ``counts``.

    Each non-blank line is decoded on its own: one that is not UTF-8, not JSON or not a
    usable record is reported on its own line number. A gzip stream that breaks off is
    reported on the line where it broke, and ends the stream (:data:`TRUNCATED`).
    """
    number = 0
    loads, refused = orjson.loads, orjson.JSONDecodeError
    with _open_bytes(path) as handle:
        try:
            for raw in handle:
                number += 1
                try:
                    record = loads(raw)
                except refused:
                    if not raw.strip():
                        continue
                    record = _decoded(path, number, raw)
                counts["records_read"] += 1
                try:
                    if not isinstance(record, dict):
                        raise (record if isinstance(record, BadRecordError) else
                               BadRecordError(path, number, "<line>", "expected a JSON object"))
                    yield parser(record, path, number)
                except BadRecordError:
                    if not skip_bad:
                        raise
                    counts["bad_records_skipped"] += 1
        except (OSError, EOFError, zlib.error) as error:
            reason = f"{TRUNCATED.replace('_', ' ')} from here on ({error})"
            if not skip_bad:
                raise BadRecordError(path, number + 1, "<file>", reason) from error
            counts[TRUNCATED] += 1



def iter_snapshot(path: Path, skip_bad: bool, counts: Counter[str]) -> Iterator[Paper]:
    """Stream the Kaggle bulk snapshot (plain or gzip)."""
    return iter_papers(path, parse_snapshot_record, skip_bad, counts)


def iter_jsonl(path: Path, skip_bad: bool, counts: Counter[str]) -> Iterator[Paper]:
    """Stream a JSONL export with ``published`` timestamps (plain or gzip)."""
    return iter_papers(path, parse_jsonl_record, skip_bad, counts)
