"""On-disk cache of model responses, one JSON file per request, keyed by model + prompt hash.

Files are written atomically, so a process killed at any moment leaves either a complete
entry or none; a rerun sends only the requests without an entry.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.substrate.atomic import atomic_write_json
from bench.substrate.errors import InputError, one_line
from bench.substrate.hashing import sha256_bytes


def request_key(model: str, prompt: str) -> str:
    """The cache key of one request: SHA-256 of the model name and the prompt."""
    return sha256_bytes(f"{model}\n{prompt}".encode())


class ResponseCache:
    """A folder of ``<key>.json`` response entries."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        """Where the entry of ``key`` lives."""
        return self.folder / f"{key}.json"

    def has(self, key: str) -> bool:
        """Whether ``key`` already has an answer."""
        return self.path(key).is_file()

    def get(self, key: str) -> dict[str, Any] | None:
        """The stored entry of ``key``, or None."""
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            entry: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as error:  # also UnicodeDecodeError
            raise InputError(f"not a cached answer ({one_line(error)})", path,
                             hint="delete the file to ask again") from error
        return entry

    def put(self, key: str, entry: dict[str, Any]) -> None:
        """Store an entry atomically."""
        atomic_write_json(self.path(key), entry)
