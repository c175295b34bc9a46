"""The arXiv query API source: each query fetched completely or not at all, cached, resumable.

Checked pages (see :mod:`data_builders.arxiv.pages`) are appended, one JSON line per paper,
to ``api-KEY.partial.jsonl``. A query is complete only when the results held number exactly
the ``opensearch:totalResults`` the server reports; then ``api-KEY.json`` records the count,
the file's hash and when it was fetched, and the file becomes ``api-KEY.jsonl``. A fetch that
fails or is killed resumes from the results held. A query whose window is still open (no end
date, or an end less than a week before the fetch) is fetched again once its copy is older
than ``refresh_after_hours``.

An answer of no results at all may be a glitch of the server: it is asked again
:data:`EMPTY_CONFIRMATIONS` times with backoff before it is believed, and even then it is
never recorded as complete, so the next run asks again.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.substrate.atomic import atomic_write_json
from bench.substrate.errors import CompressbenchError, InputError
from bench.substrate.hashing import sha256_bytes, sha256_file
from data_builders.arxiv.atom import Page, QueryRejectedError
from data_builders.arxiv.pages import DEFAULT_API_URL, ApiSettings, PageClient, PageError
from data_builders.arxiv.records import Paper, normalize_whitespace, parse_timestamp

__all__ = [
    "DEFAULT_API_URL",
    "EMPTY_CONFIRMATIONS",
    "ApiFetchError",
    "ApiQueryError",
    "ApiSettings",
    "Fetched",
    "build_query",
    "cache_path",
    "empty_answer_note",
    "fetch",
    "query_record",
]

_OPEN_END = "299912312359"
_FIRST = "199101010000"
_UPPER_BOUND = re.compile(r"submittedDate:\[\d{12} TO (\d{12})\]")
# Papers appear in the API only once announced, days after submission for some (weekends,
# moderation holds), so a window that closed less than this before the fetch may still grow.
_ANNOUNCEMENT_LAG = timedelta(days=7)
# Times an answer of no results is asked again (waiting the backoff, doubled) before it is
# believed.
EMPTY_CONFIRMATIONS = 2

logger = logging.getLogger(__name__)


class ApiFetchError(CompressbenchError, RuntimeError):
    """A query could not be fetched completely (what was fetched so far stays cached)."""


class ApiQueryError(InputError):
    """The API rejected a query as malformed."""


@dataclass(frozen=True)
class Fetched:
    """All results of one query: the file holding them and its papers; ``empty`` when the API
    answered none (an answer that is not cached)."""

    path: Path
    papers: Iterator[Paper]
    empty: bool = False


def empty_answer_note(query: str) -> str:
    """What an answer of no results for ``query`` means, and how to ask again."""
    return (
        f"the arXiv API answered 0 results for {query!r} on {1 + EMPTY_CONFIRMATIONS} "
        "requests; that answer is not cached: rerun to ask again (later, if the window should "
        "hold papers)"
    )


def build_query(start: date | None, end: date | None, categories: Sequence[str]) -> str:
    """API query for papers submitted in ``[start, end)``, optionally in ``categories``."""
    low = f"{start:%Y%m%d}0000" if start else _FIRST
    high = f"{end - timedelta(days=1):%Y%m%d}2359" if end else _OPEN_END
    query = f"submittedDate:[{low} TO {high}]"
    if categories:
        query += " AND (" + " OR ".join(f"cat:{name}" for name in categories) + ")"
    return query


def window_open_at(query: str, moment: datetime) -> bool:
    """Whether papers can still join ``query``'s results after ``moment``."""
    match = _UPPER_BOUND.search(query)
    if match is None:
        return True
    upper = datetime.strptime(match.group(1), "%Y%m%d%H%M").replace(tzinfo=UTC)
    return upper > moment - _ANNOUNCEMENT_LAG


def cache_path(settings: ApiSettings, query: str) -> Path:
    """Results file of a complete query (keyed by endpoint, query and page size)."""
    key = sha256_bytes(f"{settings.url}\n{query}\n{settings.page_size}".encode())[:16]
    return settings.cache_dir / f"api-{key}.jsonl"


def _state_path(path: Path) -> Path:
    return path.with_suffix(".json")


def _partial_path(path: Path) -> Path:
    return path.with_suffix(".partial.jsonl")


def query_record(settings: ApiSettings, query: str) -> dict[str, Any] | None:
    """What is recorded of a complete cached query (count, hash, ``fetched_at``), or None."""
    path = cache_path(settings, query)
    try:
        state: dict[str, Any] = json.loads(_state_path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if state.get("query") != query or not path.is_file():
        return None
    return state if state.get("sha256") == sha256_file(path) else None


def _needs_refresh(state: dict[str, Any], settings: ApiSettings) -> bool:
    if not state.get("open_window", True):
        return False
    try:
        fetched = datetime.fromisoformat(str(state["fetched_at"]))
    except (KeyError, ValueError):
        return True
    age = (datetime.now(UTC) - fetched.replace(tzinfo=fetched.tzinfo or UTC)).total_seconds()
    return age >= settings.refresh_after_hours * 3600


def _held_ids(partial: Path) -> set[str]:
    """Ids already fetched, cutting off a partial last line left by an interruption."""
    if not partial.exists():
        return set()
    data = partial.read_bytes()
    keep = data.rfind(b"\n") + 1
    if keep != len(data):
        with partial.open("r+b") as handle:
            handle.truncate(keep)
    held: set[str] = set()
    for number, line in enumerate(data[:keep].splitlines(), start=1):
        try:
            paper_id = json.loads(line)["id"]
        except (ValueError, KeyError, TypeError):
            paper_id = None
        if not isinstance(paper_id, str) or paper_id in held:
            raise InputError(
                f"{partial}:{number}: not a cached result, or one held twice; delete the "
                "file to fetch the query from the start"
            )
        held.add(paper_id)
    return held


def _failure(query: str, offset: int, partial: Path, error: PageError) -> ApiFetchError:
    attempts = f"after {error.attempts} attempt{'s' if error.attempts > 1 else ''}"
    where = f"arXiv API query {query!r} failed at offset {offset} {attempts} ({error.reason})"
    if error.restart:
        return ApiFetchError(f"{where}; delete {partial} to fetch the query from the start")
    held = f"{offset} result{'' if offset == 1 else 's'}"
    return ApiFetchError(f"{where}; {held} cached in {partial}: rerun to resume")


def _page(client: PageClient, offset: int, held: set[str], partial: Path) -> Page:
    try:
        return client.page(offset, held)
    except PageError as error:
        raise _failure(client.query, offset, partial, error) from None
    except QueryRejectedError as error:
        raise ApiQueryError(f"arXiv API query {client.query!r}: {error}") from None


def _download(settings: ApiSettings, query: str, partial: Path) -> int:
    """Fetch the rest of ``query`` into ``partial``; return the total once all is held (0
    only once an answer of no results was given :data:`EMPTY_CONFIRMATIONS` more times)."""
    held = _held_ids(partial)
    offset = len(held)
    client = PageClient(settings, query)
    empty_answers = 0
    with partial.open("a", encoding="utf-8") as handle:
        while True:
            page = _page(client, offset, held, partial)
            for record in page.records:
                handle.write(json.dumps(record, sort_keys=True) + "\n")
                held.add(record["id"])
            handle.flush()
            offset += len(page.records)
            logger.info("arXiv API query %r: %d of %d results", query, offset, page.total)
            if offset < page.total:
                continue
            if offset or empty_answers == EMPTY_CONFIRMATIONS:
                return offset
            empty_answers += 1
            wait = settings.backoff_seconds * 2 ** (empty_answers - 1)
            logger.warning("arXiv API query %r: 0 results; asking again in %gs", query, wait)
            time.sleep(wait)


def _finish(settings: ApiSettings, query: str, partial: Path, count: int) -> None:
    """Record the complete query, then move its results into place (a kill in between
    leaves the partial file, which the next run completes with one request)."""
    path = cache_path(settings, query)
    now = datetime.now(UTC)
    state = {
        "query": query,
        "url": settings.url,
        "page_size": settings.page_size,
        "results": count,
        "sha256": sha256_file(partial),
        "fetched_at": now.isoformat(timespec="seconds"),
        "open_window": window_open_at(query, now),
    }
    atomic_write_json(_state_path(path), state)
    os.replace(partial, path)


def _lost_results(query: str, earlier: dict[str, Any]) -> ApiFetchError:
    return ApiFetchError(
        f"arXiv API query {query!r} answered 0 results on {1 + EMPTY_CONFIRMATIONS} requests, "
        f"although {earlier['results']} were fetched at {earlier['fetched_at']}; that copy is "
        "kept: rerun later, or pass --api-refresh-after inf to build from it"
    )


def fetch(settings: ApiSettings, query: str) -> Fetched:
    """Fetch (or resume, refresh or reuse) all results of ``query``.

    An answer of no results is never cached, and refused with :class:`ApiFetchError` when
    it would replace a copy that held results.
    """
    settings.cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_path(settings, query)
    earlier = query_record(settings, query)
    if earlier is not None and not earlier.get("results"):
        earlier = None  # an answer of no results, recorded as complete by an older version
    if earlier is not None and not _needs_refresh(earlier, settings):
        return Fetched(path, _read_cache(path))
    if earlier is not None:
        logger.info("refreshing %r (fetched at %s)", query, earlier["fetched_at"])
    partial = _partial_path(path)
    count = _download(settings, query, partial)
    if count == 0:
        if earlier is not None:
            raise _lost_results(query, earlier)
        return Fetched(partial, iter(()), empty=True)
    _finish(settings, query, partial, count)
    return Fetched(path, _read_cache(path))


def _json_to_paper(record: dict[str, Any]) -> Paper:
    return Paper(
        id=record["id"],
        title=normalize_whitespace(record["title"]),
        text=normalize_whitespace(record["summary"]),
        published=parse_timestamp(record["published"]),
        categories=tuple(record["categories"]),
        version=int(record["version"]),
    )


def _read_cache(path: Path) -> Iterator[Paper]:
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            yield _json_to_paper(json.loads(line))
