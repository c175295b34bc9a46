"""Writing a prepared benchmark folder: ``test.parquet``, ``README.md``, ``manifest.json``.

Parquet bytes are deterministic for equal rows and equal library versions: the table is
built from plain Python lists with an explicit schema (no pandas metadata), written with
fixed options, and the manifest holds no timestamps.
"""

from __future__ import annotations

import platform
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from transformers import PreTrainedTokenizerBase

from bench._atomic import atomic_path, atomic_write_json, atomic_write_text, sha256_file
from bench.prepare.cut import tokenizer_name

__all__ = [
    "QA_SCHEMA",
    "REGENERATION_SCHEMA",
    "library_versions",
    "tokenizer_info",
    "write_prepared",
]

QA_SCHEMA = pa.schema(
    [
        ("qid", pa.string()),
        ("context_id", pa.string()),
        ("context", pa.string()),
        ("question", pa.string()),
        ("answers", pa.list_(pa.string())),
        ("source", pa.string()),
        ("context_tokens", pa.int64()),
    ]
)

REGENERATION_SCHEMA = pa.schema(
    [("id", pa.string()), ("text", pa.string()), ("n_tokens", pa.int64()), ("length", pa.int64())]
)


def library_versions() -> dict[str, str]:
    """Versions of the libraries that can change a prepared file's content or bytes."""
    versions = {"python": platform.python_version()}
    for package in ("compressbench", "transformers", "tokenizers", "pyarrow"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def tokenizer_info(tokenizer: PreTrainedTokenizerBase) -> dict[str, Any]:
    """Name, class, vocabulary size and (for a local folder) the tokenizer.json hash."""
    name = tokenizer_name(tokenizer)
    info: dict[str, Any] = {
        "name_or_path": name,
        "class": type(tokenizer).__name__,
        "vocab_size": len(tokenizer),
    }
    local = Path(name) / "tokenizer.json"
    if local.is_file():
        info["tokenizer_json_sha256"] = sha256_file(local)
    return info


def _write_parquet(path: Path, rows: Sequence[Mapping[str, Any]], schema: pa.Schema) -> None:
    columns = {name: [row[name] for row in rows] for name in schema.names}
    table = pa.Table.from_pydict(columns, schema=schema)
    with atomic_path(path) as tmp:
        pq.write_table(
            table,
            tmp,
            compression="zstd",
            compression_level=3,
            row_group_size=max(1, len(rows)),
            write_statistics=True,
            store_schema=False,
        )


def write_prepared(
    out_dir: Path,
    rows: Sequence[Mapping[str, Any]],
    schema: pa.Schema,
    card: str,
    manifest: dict[str, Any],
) -> Path:
    """Write the folder atomically, file by file; the manifest (written last) marks completion.

    ``manifest`` gets ``output`` (file name, sha256, rows) and ``versions`` added. Returns
    the parquet path.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "manifest.json").unlink(missing_ok=True)
    parquet = out_dir / "test.parquet"
    _write_parquet(parquet, rows, schema)
    atomic_write_text(out_dir / "README.md", card)
    full = dict(manifest)
    full["output"] = {"file": parquet.name, "sha256": sha256_file(parquet), "rows": len(rows)}
    full["versions"] = library_versions()
    atomic_write_json(out_dir / "manifest.json", full)
    return parquet
