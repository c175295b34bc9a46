"""Streaming readers for the file sources: the Kaggle bulk snapshot and JSONL exports.

Both read one line at a time (plain or gzip) so memory stays flat whatever the file size.
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
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from data_builders._io import BadRecordError
from data_builders.arxiv.records import Paper, normalize_whitespace, parse_timestamp, split_id

RecordParser = Callable[[Mapping[str, Any], Path, int], Paper]


def _text_field(record: Mapping[str, Any], path: Path, line: int, *names: str) -> str:
    for name in names:
        value = record.get(name)
        if value is None:
            continue
        if not isinstance(value, str):
            raise BadRecordError(path, line, name, f"expected a string, got {type(value).__name__}")
        cleaned = normalize_whitespace(value)
        if not cleaned:
            raise BadRecordError(path, line, name, "empty")
        return cleaned
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


def _snapshot_v1_date(record: Mapping[str, Any], path: Path, line: int) -> tuple[Any, int]:
    versions = record.get("versions")
    if not isinstance(versions, list) or not versions:
        raise BadRecordError(path, line, "versions", "missing or empty")
    created: dict[int, str] = {}
    for entry in versions:
        if not isinstance(entry, dict) or not isinstance(entry.get("created"), str):
            raise BadRecordError(path, line, "versions", f"bad entry {entry!r}")
        label = str(entry.get("version", ""))
        if not (label.startswith("v") and label[1:].isdigit()):
            raise BadRecordError(path, line, "versions", f"bad version label {label!r}")
        created[int(label[1:])] = entry["created"]
    if 1 not in created:
        raise BadRecordError(path, line, "versions", "no v1 entry")
    try:
        return parse_timestamp(created[1]), max(created)
    except ValueError as error:
        raise BadRecordError(path, line, "versions[v1].created", str(error)) from error


def parse_snapshot_record(record: Mapping[str, Any], path: Path, line: int) -> Paper:
    """A Kaggle ``arxiv-metadata-oai-snapshot`` record; the date is v1's ``created``."""
    raw_id = record.get("id")
    if not isinstance(raw_id, str) or not raw_id.strip():
        raise BadRecordError(path, line, "id", "missing or not a string")
    published, version = _snapshot_v1_date(record, path, line)
    return Paper(
        id=raw_id.strip(),
        title=_text_field(record, path, line, "title"),
        text=_text_field(record, path, line, "abstract"),
        published=published,
        categories=_categories(record, path, line),
        version=version,
    )


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


def json_lines(path: Path) -> Iterator[tuple[int, Any | BadRecordError]]:
    """``(line number, object)`` of each non-blank line, each line decoded on its own.

    A line that is not UTF-8 or not JSON yields a :class:`BadRecordError` on its own line
    number; a gzip stream that breaks off yields one for the line where it broke, and ends.
    """
    with _open_bytes(path) as handle:
        number = 0
        while True:
            number += 1
            try:
                raw = handle.readline()
            except (OSError, EOFError, zlib.error) as error:
                reason = f"{TRUNCATED.replace('_', ' ')} from here on ({error})"
                yield number, BadRecordError(path, number, "<file>", reason)
                return
            if not raw:
                return
            if raw.strip():
                yield number, _decoded(path, number, raw)


def iter_papers(
    path: Path, parser: RecordParser, skip_bad: bool, counts: Counter[str]
) -> Iterator[Paper]:
    """Stream the papers of ``path``; bad lines raise, or are skipped and counted in ``counts``."""
    for line, record in json_lines(path):
        if isinstance(record, BadRecordError) and record.field == "<file>":
            if not skip_bad:
                raise record
            counts[TRUNCATED] += 1
            continue
        counts["records_read"] += 1
        try:
            if isinstance(record, BadRecordError):
                raise record
            if not isinstance(record, dict):
                raise BadRecordError(path, line, "<line>", "expected a JSON object")
            yield parser(record, path, line)
        except BadRecordError:
            if not skip_bad:
                raise
            counts["bad_records_skipped"] += 1


def iter_snapshot(path: Path, skip_bad: bool, counts: Counter[str]) -> Iterator[Paper]:
    """Stream the Kaggle bulk snapshot (plain or gzip)."""
    return iter_papers(path, parse_snapshot_record, skip_bad, counts)


def iter_jsonl(path: Path, skip_bad: bool, counts: Counter[str]) -> Iterator[Paper]:
    """Stream a JSONL export with ``published`` timestamps (plain or gzip)."""
    return iter_papers(path, parse_jsonl_record, skip_bad, counts)
