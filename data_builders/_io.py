"""Shared I/O for the builders: atomic writes (see :mod:`bench._atomic`), hashing,
deterministic Parquet, line readers."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pyarrow as pa
import pyarrow.parquet as pq

from bench import _atomic

_CHUNK = 1 << 20


class BadRecordError(ValueError):
    """An input record that cannot be used, located by file, line and field."""

    def __init__(self, path: Path | str, line: int, field: str, reason: str) -> None:
        super().__init__(f"{path}:{line}: field {field!r}: {reason}")
        self.path = str(path)
        self.line = line
        self.field = field
        self.reason = reason


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder + ``os.replace``.

    The file gets the mode the umask allows; see :mod:`bench._atomic`.
    """
    _atomic.atomic_write_bytes(path, data)


def atomic_write_text(path: Path, text: str) -> None:
    """Atomically write UTF-8 text."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, payload: Any) -> None:
    """Atomically write JSON with sorted keys (stable bytes for stable content)."""
    atomic_write_text(
        path, json.dumps(payload, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    )


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def write_parquet(table: pa.Table, path: Path) -> None:
    """Write ``table`` atomically and deterministically (same rows -> same bytes).

    No pandas index, no timestamps, fixed compression and row-group size; the only metadata
    is the Arrow schema, which depends on the columns alone.
    """
    buffer = io.BytesIO()
    pq.write_table(
        table.replace_schema_metadata(None),
        buffer,
        compression="zstd",
        compression_level=3,
        row_group_size=65536,
        use_dictionary=True,
        write_statistics=True,
    )
    atomic_write_bytes(path, buffer.getvalue())


def link_or_copy(source: Path, target: Path) -> None:
    """Make ``target`` a hard link to ``source`` (a copy where links are impossible), atomically."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.link")
    tmp.unlink(missing_ok=True)
    try:
        os.link(source, tmp)
    except OSError:
        shutil.copyfile(source, tmp)
        os.chmod(tmp, _atomic.file_mode())
    os.replace(tmp, target)
    _atomic.note_write()


def open_text(path: Path) -> IO[str]:
    """Open a plain or gzip-compressed text file for reading (detected by magic bytes)."""
    with path.open("rb") as probe:
        magic = probe.read(2)
    if magic == b"\x1f\x8b":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="\n")
    return path.open("r", encoding="utf-8", newline="\n")


def iter_json_lines(path: Path) -> Iterator[tuple[int, Any | BadRecordError]]:
    """Yield ``(line_number, parsed_object)`` for each non-blank line, streaming.

    A line that is not valid JSON yields a :class:`BadRecordError` instead of raising, so that
    callers decide between failing and skipping.
    """
    with open_text(path) as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as error:
                yield number, BadRecordError(path, number, "<line>", f"invalid JSON ({error.msg})")
