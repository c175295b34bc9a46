"""Building the rows of the prepared regeneration benchmark (texts cut to exact lengths)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from tqdm import tqdm
from transformers import PreTrainedTokenizerBase

from bench import specs
from bench.prepare.cut import cut_to_tokens
from bench.prepare.data_dir import CORPUS_REBUILD
from bench.prepare.qa import sample_rows
from bench.substrate.errors import InputError
from bench.substrate.manifest import verify_folder

__all__ = ["PAPER_LENGTHS", "build_regeneration_rows", "read_corpus_lengths"]

# The lengths of the paper's regeneration tasks.
PAPER_LENGTHS = specs.benchmark("regeneration").lengths

_CORPUS_COLUMNS = ("id", "text", "n_tokens", "length")


def read_corpus_lengths(
    folder: Path, lengths: Sequence[int]
) -> tuple[dict[int, list[dict[str, str]]], dict[str, str]]:
    """Read ``test_len{L}.parquet`` of an Arxiv Corpus folder for every requested length.

    The folder must match its manifest (:func:`bench.substrate.manifest.verify_folder`).
    Returns the records per length and each file's path (for hashing). Raises
    ``FileNotFoundError`` naming the missing file and ``ValueError`` naming a missing column
    or a folder that does not match its manifest.
    """
    by_length: dict[int, list[dict[str, str]]] = {}
    files: dict[str, str] = {}
    for length in lengths:
        path = folder / f"test_len{length}.parquet"
        if not path.is_file():
            found = sorted(p.name for p in folder.glob("test_len*.parquet"))
            raise FileNotFoundError(f"{path} not found (found: {found or 'none'})")
    verify_folder(folder, CORPUS_REBUILD, required=[f"test_len{n}.parquet" for n in lengths])
    for length in lengths:
        path = folder / f"test_len{length}.parquet"
        table = pq.read_table(path)
        missing = [c for c in _CORPUS_COLUMNS if c not in table.column_names]
        if missing:
            raise InputError(f"{path}: missing column(s) {missing}; has {table.column_names}")
        ids, texts = table.column("id").to_pylist(), table.column("text").to_pylist()
        records = []
        for row, (rid, text) in enumerate(zip(ids, texts, strict=True), start=1):
            if not isinstance(text, str) or rid is None:
                raise InputError(f"{path}: row {row}: field 'text'/'id' is null or not a string")
            records.append({"id": str(rid), "text": text})
        by_length[length] = records
        files[f"test_len{length}.parquet"] = str(path)
    return by_length, files


def build_regeneration_rows(
    records_by_length: Mapping[int, Iterable[Mapping[str, Any]]],
    tokenizer: PreTrainedTokenizerBase,
    limit: int | None,
    seed: int,
    show_progress: bool = True,
) -> tuple[list[dict[str, Any]], dict[str, dict[str, int]]]:
    """Cut each record's text to exactly ``length`` target tokens, per length group.

    Records shorter than the length (or with no prefix of exactly that many tokens) are
    dropped and counted. ``limit`` applies per length group (seeded by id, see
    :func:`sample_rows`). Rows are ordered by length, then input order.
    """
    rows: list[dict[str, Any]] = []
    counts: dict[str, dict[str, int]] = {}
    for length in sorted(records_by_length):
        records = list(records_by_length[length])
        group: list[dict[str, Any]] = []
        for record in tqdm(records, desc=f"cutting to {length}", disable=not show_progress):
            cut = cut_to_tokens(tokenizer, str(record["text"]), length, exact=True)
            if cut is not None:
                group.append(
                    {"id": str(record["id"]), "text": cut[0], "n_tokens": cut[1], "length": length}
                )
        ids = [row["id"] for row in group]
        if len(set(ids)) != len(ids):
            raise InputError(f"duplicate ids in the length-{length} records")
        selected = sample_rows(group, limit, seed, key="id")
        counts[str(length)] = {
            "read": len(records),
            "dropped_too_short": len(records) - len(group),
            "kept": len(group),
            "selected": len(selected),
        }
        rows.extend(selected)
    return rows, counts
