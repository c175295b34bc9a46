"""Arrow tables of the corpus splits and regeneration groups (fixed schemas, sorted rows)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from bench.substrate.parquet import ROW_GROUP_ROWS, open_parquet_writer, write_parquet
from data_builders.arxiv.records import Paper

SPLIT_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("title", pa.string()),
        ("text", pa.string()),
        ("published", pa.string()),
        ("categories", pa.list_(pa.string())),
        ("n_tokens", pa.int64()),
    ]
)
GROUP_SCHEMA = SPLIT_SCHEMA.append(pa.field("length", pa.int64()))


def split_table(papers: Sequence[Paper], n_tokens: Sequence[int]) -> pa.Table:
    """One split: rows sorted by id, ``published`` as an ISO date string."""
    rows = sorted(zip(papers, n_tokens, strict=True), key=lambda row: row[0].id)
    return pa.table(
        {
            "id": [p.id for p, _ in rows],
            "title": [p.title for p, _ in rows],
            "text": [p.text for p, _ in rows],
            "published": [p.published.isoformat() for p, _ in rows],
            "categories": [list(p.categories) for p, _ in rows],
            "n_tokens": [n for _, n in rows],
        },
        schema=SPLIT_SCHEMA,
    )


def group_table(papers: Sequence[Paper], cut_texts: Sequence[str], length: int) -> pa.Table:
    """One regeneration group: texts cut to exactly ``length`` tokens, sorted by id."""
    rows = sorted(zip(papers, cut_texts, strict=True), key=lambda row: row[0].id)
    return pa.table(
        {
            "id": [p.id for p, _ in rows],
            "title": [p.title for p, _ in rows],
            "text": [text for _, text in rows],
            "published": [p.published.isoformat() for p, _ in rows],
            "categories": [list(p.categories) for p, _ in rows],
            "n_tokens": [length] * len(rows),
            "length": [length] * len(rows),
        },
        schema=GROUP_SCHEMA,
    )


class SplitWriter:
    """Writes one split in row groups as its rows arrive (sorted by id), to the very bytes
    :func:`bench.substrate.parquet.write_parquet` gives for the whole :func:`split_table`.

    Rows are held as Arrow parts of ``part_rows`` until a row group (``row_group_rows``, the
    size ``write_parquet`` uses) is full; each group is made one contiguous table before it
    is written, as the page layout depends on it. A split without rows is written by
    ``write_parquet`` itself.
    """

    def __init__(self, path: Path, row_group_rows: int = ROW_GROUP_ROWS,
                 part_rows: int = 4096) -> None:
        self.path = path
        self.row_group_rows = row_group_rows
        self.part_rows = part_rows
        self.rows = 0
        self._papers: list[Paper] = []
        self._n_tokens: list[int] = []
        self._parts: list[pa.Table] = []
        self._buffered = 0
        self._writer: pq.ParquetWriter | None = None

    def add(self, paper: Paper, n_tokens: int) -> None:
        """The next row (ids must come in increasing order)."""
        self._papers.append(paper)
        self._n_tokens.append(n_tokens)
        self.rows += 1
        if len(self._papers) == self.part_rows:
            self._close_part()

    def _close_part(self) -> None:
        if self._papers:
            self._parts.append(split_table(self._papers, self._n_tokens))
            self._buffered += len(self._papers)
            self._papers, self._n_tokens = [], []
        while self._buffered >= self.row_group_rows:
            self._write_group(self.row_group_rows)

    def _write_group(self, rows: int) -> None:
        table = pa.concat_tables(self._parts)
        group, rest = table.slice(0, rows), table.slice(rows)
        if self._writer is None:
            self._writer = open_parquet_writer(self.path, SPLIT_SCHEMA)
        self._writer.write_table(group.combine_chunks(), row_group_size=self.row_group_rows)
        self._parts = [rest] if rest.num_rows else []
        self._buffered = rest.num_rows

    def close(self) -> None:
        """Write what is left and the footer."""
        self._close_part()
        if self._buffered:
            self._write_group(self._buffered)
        if self._writer is not None:
            self._writer.close()
        else:
            write_parquet(split_table([], []), self.path)
