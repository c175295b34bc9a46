"""Writing a prepared benchmark folder: ``test.parquet``, ``README.md``, ``manifest.json``.

Parquet bytes are deterministic for equal rows and equal library versions: the table is
built from plain Python lists with an explicit schema (no pandas metadata), written with
fixed options, and the manifest holds no timestamps and no output path.

The folder is written as one unit (:func:`bench.substrate.atomic.atomic_directory`): killed at any
moment, it holds the previous complete benchmark or the new one. A benchmark without a
single row is refused before anything is written.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
from transformers import PreTrainedTokenizerBase

from bench.prepare.cut import tokenizer_name
from bench.substrate.atomic import atomic_directory, atomic_write_text
from bench.substrate.errors import InputError
from bench.substrate.hashing import sha256_file
from bench.substrate.manifest import MANIFEST_NAME, installed_versions, write_manifest
from bench.substrate.parquet import write_parquet

__all__ = [
    "PREPARED_FILES",
    "QA_SCHEMA",
    "REGENERATION_SCHEMA",
    "NoUsableRowsError",
    "library_versions",
    "rebuild_command",
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

PREPARED_FILES = ("test.parquet", "README.md", MANIFEST_NAME)


class NoUsableRowsError(InputError):
    """Every input row was dropped: there is no benchmark to write."""


def library_versions() -> dict[str, str]:
    """Versions of the libraries that can change a prepared file's content or bytes."""
    return installed_versions(("compressbench", "transformers", "tokenizers", "pyarrow"),
                              missing="not installed")


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


def _describe_counts(counts: Mapping[str, Any]) -> str:
    """``a=1, b=2``; nested counts (per length) as ``length 96: a=1, b=2; length 192: ...``."""
    if all(isinstance(value, Mapping) for value in counts.values()):
        return "; ".join(f"length {key}: {_describe_counts(value)}"
                         for key, value in counts.items())
    return ", ".join(f"{key}={value}" for key, value in counts.items())


def _no_rows_message(out_dir: Path, manifest: Mapping[str, Any]) -> str:
    benchmark, source = manifest["args"]["benchmark"], manifest["source"]
    what = "text" if benchmark == "regeneration" else "question"
    origin = source.get("path") or source.get("dataset") or source.get("name")
    return (f"{benchmark}: no usable {what} in {origin}, nothing written ({out_dir} left as "
            f"it was); counts: {_describe_counts(manifest['counts'])}")


def _source_argument(source: Mapping[str, Any]) -> str | None:
    if source["kind"] in ("file", "arxiv_corpus"):
        return os.path.abspath(str(source["path"]))
    if source["kind"] == "huggingface":
        return "hf"
    return None


def rebuild_command(manifest: Mapping[str, Any]) -> str:
    """The ``python -m bench.prepare`` command that writes this benchmark again.

    The data directory appears as ``{parent}`` (filled in by the reader).
    """
    args, source = manifest["args"], manifest["source"]
    source_argument = _source_argument(source)
    if source_argument is None:
        if source.get("name") == "demo":
            return "python -m bench demo --out DEMO_DIR"
        return "bench.prepare.cli.prepare_regeneration_from_texts with the same records"
    parts = ["python", "-m", "bench.prepare", args["benchmark"], "--source", source_argument,
             "--tokenizer", str(manifest["tokenizer"]["name_or_path"])]
    if args["benchmark"] == "regeneration":
        parts += ["--lengths", ",".join(str(n) for n in args["lengths"])]
    else:
        parts += ["--max-context-tokens", str(args["max_context_tokens"])]
        parts += ["--subset", str(args["subset"])] if args.get("subset") else []
        parts += [] if args.get("clean_markup", True) else ["--keep-markup"]
    parts += ["--limit", str(args["limit"])] if args.get("limit") is not None else []
    parts += ["--seed", str(args["seed"])]
    return shlex.join(parts) + " --out {parent}"


def write_prepared(
    out_dir: Path,
    rows: Sequence[Mapping[str, Any]],
    schema: pa.Schema,
    card: str,
    manifest: dict[str, Any],
) -> Path:
    """Write the folder as one unit: built beside ``out_dir``, then swapped into place.

    ``manifest`` gets ``output`` (file name, sha256, rows), ``versions``, ``rebuild`` and
    ``files`` added. No rows raise :class:`NoUsableRowsError` (with the counts of why) and
    leave ``out_dir`` as it was. Returns the parquet path.
    """
    if not rows:
        raise NoUsableRowsError(_no_rows_message(out_dir, manifest))
    rebuild = rebuild_command(manifest)
    with atomic_directory(out_dir, owned=PREPARED_FILES) as staging:
        parquet = staging / "test.parquet"
        columns = {name: [row[name] for row in rows] for name in schema.names}
        write_parquet(pa.Table.from_pydict(columns, schema=schema), parquet,
                      row_group_rows=len(rows), store_schema=False)
        shown = rebuild.replace("{parent}", "DATA_DIR")
        atomic_write_text(staging / "README.md", f"{card.rstrip()}\n\nRebuild: `{shown}`\n")
        full = dict(manifest)
        full["output"] = {"file": parquet.name, "sha256": sha256_file(parquet), "rows": len(rows)}
        full["versions"] = library_versions()
        write_manifest(staging, full, rebuild)
    return out_dir / "test.parquet"
