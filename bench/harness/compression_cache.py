"""On-disk cache of compressions, reused across questions, runs and target models.

Key: compressor name, version and settings, a hash of the checkpoint's files, the context
(and the question for question-aware methods) and the target tokenizer. Text forms are stored
as JSON; tensors (embeddings, key/value states) as safetensors. Writes are atomic.

An entry that cannot be read back (truncated, empty, not the expected JSON or tensors) is a
miss, with a warning, and is computed and written again. A write that fails (a full disk)
turns writing off for the rest of the run, with a warning, and leaves no temporary file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

from safetensors import SafetensorError

from bench.records import (
    CompressedContext,
    CompressedEmbeddings,
    CompressedKV,
    CompressedText,
    CompressionStats,
)
from bench.substrate.atomic import atomic_path, atomic_write_text
from bench.substrate.errors import one_line

CACHE_FORMAT = "1"
logger = logging.getLogger(__name__)
_UNREADABLE = (OSError, ValueError, KeyError, TypeError, SafetensorError)


def checkpoint_digest(path: str | None) -> str | None:
    """sha256 over the relative names and bytes of every file under ``path``."""
    if not path:
        return None
    root = Path(path)
    if not root.exists():
        return None
    digest = hashlib.sha256()
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    for file in files:
        digest.update(str(file.relative_to(root.parent)).encode())
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def tokenizer_identity(tokenizer: Any) -> str:
    """Name and vocabulary fingerprint of a tokenizer."""
    vocab = sorted(tokenizer.get_vocab().items())
    digest = hashlib.sha256(json.dumps(vocab).encode()).hexdigest()[:16]
    return f"{getattr(tokenizer, 'name_or_path', '')}#{digest}"


def cache_key(identity: dict[str, Any], context: str, question: str | None,
              prompt: tuple[str, str | None] | None = None) -> str:
    """Stable key of one compression (``prompt``: the prefix and suffix around the context,
    for methods whose compression reads them)."""
    fields: dict[str, Any] = {"format": CACHE_FORMAT, **identity, "context": context,
                              "question": question}
    if prompt is not None:
        fields["prompt"] = list(prompt)
    payload = json.dumps(fields, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


class CompressionCache:
    """A directory of cached compressions; ``get`` returns None on a miss."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.hits = 0
        self.misses = 0
        self.writable = True

    def _paths(self, key: str) -> tuple[Path, Path]:
        folder = self.root / key[:2]
        return folder / f"{key}.json", folder / f"{key}.safetensors"

    def get(self, key: str, device: Any = "cpu") -> CompressedContext | None:
        meta_path, tensor_path = self._paths(key)
        if not meta_path.is_file():
            self.misses += 1
            return None
        try:
            compressed = _read_entry(meta_path, tensor_path, device)
        except _UNREADABLE as error:
            logger.warning("compression cache entry %s cannot be read (%s); recomputing it",
                           meta_path, one_line(error))
            self.misses += 1
            return None
        self.hits += 1
        return compressed

    def put(self, key: str, compressed: CompressedContext) -> None:
        """Store ``compressed``; after a failed write the cache stops writing."""
        if not self.writable:
            return
        try:
            self._write(key, compressed)
        except OSError as error:
            self.writable = False
            for path in self._paths(key):
                with contextlib.suppress(OSError):
                    path.unlink(missing_ok=True)
            logger.warning("the compression cache at %s cannot be written (%s); the evaluation "
                           "goes on without storing compressions", self.root, one_line(error))

    def _write(self, key: str, compressed: CompressedContext) -> None:
        meta_path, tensor_path = self._paths(key)
        meta_path.parent.mkdir(parents=True, exist_ok=True)
        meta: dict[str, Any] = {"stats": asdict(compressed.stats), "extra": compressed.extra}
        if isinstance(compressed, CompressedText):
            meta.update(form="text", text=compressed.text,
                        keep_instruction=compressed.keep_instruction)
        else:
            from safetensors.torch import save_file

            if isinstance(compressed, CompressedEmbeddings):
                tensors = {"embeddings": compressed.embeddings}
                meta["form"] = "embeddings"
            else:
                tensors = {f"k{i}": k for i, k in enumerate(compressed.keys)}
                tensors.update({f"v{i}": v for i, v in enumerate(compressed.values)})
                meta.update(form="kv", layers=len(compressed.keys),
                            position_offset=compressed.position_offset)
            with atomic_path(tensor_path) as tmp:
                save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()},
                          str(tmp))
        atomic_write_text(meta_path, json.dumps(meta, default=str))


def _read_entry(meta_path: Path, tensor_path: Path, device: Any) -> CompressedContext:
    """The compression stored at ``meta_path`` (and ``tensor_path``); raises when damaged."""
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    if not isinstance(meta, dict):
        raise ValueError("not a JSON object")
    stats = CompressionStats(**_field(meta, "stats", dict))
    extra = _field(meta, "extra", dict)
    form = _field(meta, "form", str)
    if form == "text":
        return CompressedText(_field(meta, "text", str), stats,
                              _field(meta, "keep_instruction", bool), extra)
    if form not in ("embeddings", "kv"):
        raise ValueError(f"unknown form {form!r}")
    from safetensors.torch import load_file

    tensors = load_file(str(tensor_path), device=str(device))
    if form == "embeddings":
        return CompressedEmbeddings(tensors["embeddings"], stats, extra)
    layers = _field(meta, "layers", int)
    keys = tuple(tensors[f"k{i}"] for i in range(layers))
    values = tuple(tensors[f"v{i}"] for i in range(layers))
    return CompressedKV(keys, values, stats, _field(meta, "position_offset", int), extra)


def _field(meta: dict[str, Any], name: str, kind: type) -> Any:
    if name not in meta:
        raise ValueError(f"field {name!r} is missing")
    value = meta[name]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise TypeError(f"field {name!r} is not of type {kind.__name__}")
    return value
