"""On-disk cache of compressions, reused across questions, runs and target models.

Key: compressor name, version and settings, a hash of the checkpoint's files, the context
(and the question for question-aware methods) and the target tokenizer. Text forms are stored
as JSON; tensors (embeddings, key/value states) as safetensors. Writes are atomic.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.records import (
    CompressedContext,
    CompressedEmbeddings,
    CompressedKV,
    CompressedText,
    CompressionStats,
)

CACHE_FORMAT = "1"


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


def cache_key(identity: dict[str, Any], context: str, question: str | None) -> str:
    """Stable key of one compression."""
    payload = json.dumps({"format": CACHE_FORMAT, **identity, "context": context,
                          "question": question}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


class CompressionCache:
    """A directory of cached compressions; ``get`` returns None on a miss."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.hits = 0
        self.misses = 0

    def _paths(self, key: str) -> tuple[Path, Path]:
        folder = self.root / key[:2]
        return folder / f"{key}.json", folder / f"{key}.safetensors"

    def get(self, key: str, device: Any = "cpu") -> CompressedContext | None:
        meta_path, tensor_path = self._paths(key)
        if not meta_path.is_file():
            self.misses += 1
            return None
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        stats = CompressionStats(**meta["stats"])
        self.hits += 1
        if meta["form"] == "text":
            return CompressedText(meta["text"], stats, meta["keep_instruction"], meta["extra"])
        from safetensors.torch import load_file

        tensors = load_file(str(tensor_path), device=str(device))
        if meta["form"] == "embeddings":
            return CompressedEmbeddings(tensors["embeddings"], stats, meta["extra"])
        layers = meta["layers"]
        keys = tuple(tensors[f"k{i}"] for i in range(layers))
        values = tuple(tensors[f"v{i}"] for i in range(layers))
        return CompressedKV(keys, values, stats, meta["position_offset"], meta["extra"])

    def put(self, key: str, compressed: CompressedContext) -> None:
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
            tmp = tensor_path.with_suffix(f".tmp{os.getpid()}")
            save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp))
            os.replace(tmp, tensor_path)
        _atomic_write_text(meta_path, json.dumps(meta, default=str))


def _atomic_write_text(path: Path, text: str) -> None:
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(handle, "w", encoding="utf-8") as stream:
        stream.write(text)
    os.replace(tmp, path)
