"""The arXiv query API source (through the ``arxiv`` package), cached on disk and resumable.

Each query's results are appended, one JSON line per paper, to a cache file as they arrive;
an interrupted fetch resumes at the number of complete lines already stored, and a finished
one is marked ``.done`` and never fetched again. The package enforces the API's politeness
delay between requests; failures are retried here with exponential backoff.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from data_builders._io import atomic_write_json, sha256_bytes
from data_builders.arxiv.records import Paper, normalize_whitespace, parse_timestamp, split_id

DEFAULT_API_URL = "https://export.arxiv.org/api/query"
_OPEN_END = "299912312359"
_FIRST = "199101010000"

logger = logging.getLogger(__name__)


class ApiFetchError(RuntimeError):
    """The API kept failing after all retries (what was fetched so far stays cached)."""


@dataclass(frozen=True)
class ApiSettings:
    """How to talk to the API: endpoint, politeness delay, paging and retries."""

    cache_dir: Path
    url: str = DEFAULT_API_URL
    delay_seconds: float = 3.0
    page_size: int = 100
    retries: int = 5
    backoff_seconds: float = 10.0


def build_query(start: date | None, end: date | None, categories: Sequence[str]) -> str:
    """API query for papers submitted in ``[start, end)``, optionally in ``categories``."""
    low = f"{start:%Y%m%d}0000" if start else _FIRST
    high = f"{end - timedelta(days=1):%Y%m%d}2359" if end else _OPEN_END
    query = f"submittedDate:[{low} TO {high}]"
    if categories:
        query += " AND (" + " OR ".join(f"cat:{name}" for name in categories) + ")"
    return query


def _result_to_json(result: Any) -> dict[str, Any]:
    paper_id, version = split_id(result.entry_id)
    return {
        "id": paper_id,
        "version": version,
        "title": result.title,
        "summary": result.summary,
        "published": result.published.isoformat(),
        "categories": list(result.categories),
    }


def _json_to_paper(record: dict[str, Any]) -> Paper:
    return Paper(
        id=record["id"],
        title=normalize_whitespace(record["title"]),
        text=normalize_whitespace(record["summary"]),
        published=parse_timestamp(record["published"]),
        categories=tuple(record["categories"]),
        version=int(record["version"]),
    )


def cache_path(settings: ApiSettings, query: str) -> Path:
    """Cache file of one query (keyed by endpoint, query and page size)."""
    key = sha256_bytes(f"{settings.url}\n{query}\n{settings.page_size}".encode())[:16]
    return settings.cache_dir / f"api-{key}.jsonl"


def _complete_lines(path: Path) -> int:
    """Count complete lines, cutting off a partial last line left by an interruption."""
    if not path.exists():
        return 0
    data = path.read_bytes()
    keep = data.rfind(b"\n") + 1
    if keep != len(data):
        with path.open("r+b") as handle:
            handle.truncate(keep)
    return data[:keep].count(b"\n")


def _make_client(settings: ApiSettings) -> Any:
    import arxiv

    client = arxiv.Client(
        page_size=settings.page_size, delay_seconds=settings.delay_seconds, num_retries=0
    )
    client.query_url_format = settings.url + "?{}"
    return client


def _download(settings: ApiSettings, query: str, path: Path) -> int:
    import arxiv
    import requests

    client = _make_client(settings)
    search = arxiv.Search(
        query=query,
        max_results=None,
        sort_by=arxiv.SortCriterion.SubmittedDate,
        sort_order=arxiv.SortOrder.Ascending,
    )
    offset = _complete_lines(path)
    failures = 0
    with path.open("a", encoding="utf-8") as handle:
        while True:
            start = offset
            try:
                for result in client.results(search, offset=offset):
                    handle.write(json.dumps(_result_to_json(result), sort_keys=True) + "\n")
                    handle.flush()
                    offset += 1
                return offset
            except (arxiv.ArxivError, requests.RequestException) as error:
                failures = 1 if offset > start else failures + 1
                if failures > settings.retries:
                    raise ApiFetchError(
                        f"arXiv API failed {failures} times in a row at offset {offset} "
                        f"({error}); {offset} results are cached in {path}: rerun to resume"
                    ) from error
                wait = settings.backoff_seconds * 2 ** (failures - 1)
                logger.warning(
                    "API error at offset %d (%s); retrying in %.1fs", offset, error, wait
                )
                time.sleep(wait)


def fetch(settings: ApiSettings, query: str) -> tuple[Path, Iterator[Paper]]:
    """Fetch (or resume, or reuse) all results of ``query``; return the cache file and papers."""
    settings.cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_path(settings, query)
    done = path.with_suffix(".done")
    if not done.exists():
        count = _download(settings, query, path)
        atomic_write_json(done, {"query": query, "url": settings.url, "results": count})
    return path, _read_cache(path)


def _read_cache(path: Path) -> Iterator[Paper]:
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            yield _json_to_paper(json.loads(line))
