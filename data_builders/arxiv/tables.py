"""Arrow tables of the corpus splits and regeneration groups (fixed schemas, sorted rows)."""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa

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
