"""Deterministic Parquet: the same rows give the same bytes (with the same pyarrow).

No pandas index, no timestamps, fixed compression and row-group size; the only metadata
is the Arrow schema, which depends on the columns alone (or none, with ``store_schema``
off). Files are written atomically (:func:`bench.substrate.atomic.atomic_path`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from bench.substrate.atomic import atomic_path

__all__ = ["PARQUET_OPTIONS", "ROW_GROUP_ROWS", "open_parquet_writer", "write_parquet"]

ROW_GROUP_ROWS = 65536
PARQUET_OPTIONS: dict[str, Any] = {
    "compression": "zstd",
    "compression_level": 3,
    "use_dictionary": True,
    "write_statistics": True,
}


def write_parquet(
    table: pa.Table,
    path: Path,
    row_group_rows: int = ROW_GROUP_ROWS,
    store_schema: bool = True,
) -> None:
    """Write ``table`` to ``path`` atomically and deterministically.

    ``store_schema`` keeps the Arrow schema in the file's metadata (types such as
    ``large_string`` read back as written).
    """
    with atomic_path(path) as tmp:
        pq.write_table(
            table.replace_schema_metadata(None),
            tmp,
            row_group_size=row_group_rows,
            store_schema=store_schema,
            **PARQUET_OPTIONS,
        )


def open_parquet_writer(path: Path, schema: pa.Schema) -> pq.ParquetWriter:
    """A writer that streams row groups into ``path`` with the options of
    :func:`write_parquet` (not atomic: write into a staging folder)."""
    return pq.ParquetWriter(path, schema, **PARQUET_OPTIONS)
