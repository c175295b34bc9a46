"""Asking the arXiv API for one result page: URL, politeness delay, timeout, checks, retries.

A page is accepted only when it is a whole Atom feed (see :mod:`data_builders.arxiv.atom`)
that agrees with what is already held: it starts where it was asked to, is not empty while
the reported total says more results follow, and does not report fewer results than are
already fetched. Anything else is retried with exponential backoff; after the last retry, or
at once for an answer retrying cannot change, :class:`PageError` says why.
"""

from __future__ import annotations

import http.client
import logging
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

from data_builders.arxiv.atom import BadPageError, Page, QueryRejectedError, parse_page

DEFAULT_API_URL = "https://export.arxiv.org/api/query"
USER_AGENT = "compressbench-arxiv-corpus/0.1 (arXiv query API client)"
# Client errors that asking again cannot fix (timeouts and rate limits can be).
_RETRYABLE_CLIENT_ERRORS = {408, 425, 429}
_CHUNK = 1 << 16

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ApiSettings:
    """How to talk to the API: endpoint, politeness delay, paging, timeout and retries."""

    cache_dir: Path
    url: str = DEFAULT_API_URL
    delay_seconds: float = 3.0
    page_size: int = 100
    retries: int = 5
    backoff_seconds: float = 10.0
    timeout_seconds: float = 60.0
    refresh_after_hours: float = 24.0


class _Refused(Exception):
    """One attempt failed; ``retryable``: another attempt may succeed; ``restart``: the
    results held no longer fit the server's order, so the query must start again."""

    def __init__(self, reason: str, retryable: bool = True, restart: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.restart = restart


class PageError(RuntimeError):
    """No usable page: why (``reason``), after how many ``attempts``, and ``restart`` as
    for :class:`_Refused`."""

    def __init__(self, refused: _Refused, attempts: int) -> None:
        super().__init__(refused.reason)
        self.reason = refused.reason
        self.attempts = attempts
        self.restart = refused.restart


def page_url(settings: ApiSettings, query: str, start: int) -> str:
    """The request for ``page_size`` results of ``query`` from ``start``, oldest first."""
    arguments = {
        "search_query": query,
        "id_list": "",
        "sortBy": "submittedDate",
        "sortOrder": "ascending",
        "start": str(start),
        "max_results": str(settings.page_size),
    }
    return f"{settings.url}?{urlencode(arguments)}"


def _read_body(url: str, timeout: float) -> bytes:
    """GET ``url``; every wait for the server ends after ``timeout`` seconds, and so does
    the page as a whole (checked between reads)."""
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    deadline = time.monotonic() + timeout
    chunks: list[bytes] = []
    with urllib.request.urlopen(request, timeout=timeout) as response:
        announced = response.headers.get("Content-Length")
        while chunk := response.read(_CHUNK):
            chunks.append(chunk)
            if time.monotonic() > deadline:
                raise TimeoutError(f"page not complete after {timeout:g}s")
    body = b"".join(chunks)
    if announced is not None and announced.isdigit() and len(body) != int(announced):
        raise _Refused(f"truncated response ({len(body)} of {announced} bytes)")
    return body


def _http_error(error: urllib.error.HTTPError) -> _Refused:
    try:
        parse_page(error.read())
    except QueryRejectedError:
        raise
    except (BadPageError, OSError, http.client.HTTPException):
        pass
    retryable = error.code >= 500 or error.code in _RETRYABLE_CLIENT_ERRORS
    return _Refused(f"HTTP {error.code} {error.reason}", retryable)


def _describe(error: BaseException, timeout: float) -> str:
    if isinstance(error, urllib.error.URLError) and isinstance(error.reason, BaseException):
        error = error.reason
    if isinstance(error, TimeoutError):
        return f"timed out after {timeout:g}s"
    return f"{type(error).__name__}: {error}"


def _check(page: Page, start: int, held: set[str]) -> None:
    """Refuse a page that contradicts the request or the results already held."""
    end = start + len(page.records)
    if page.start is not None and page.start != start:
        raise _Refused(f"page starts at {page.start}, not at the {start} asked")
    if not page.records and start < page.total:
        raise _Refused(f"empty page although the server reports {page.total} results")
    if page.total < end:
        raise _Refused(f"the server reports {page.total} results, fewer than the {end} fetched")
    for record in page.records:
        if record["id"] in held:
            raise _Refused(
                f"{record['id']} is already fetched: the order of the results changed",
                retryable=False,
                restart=True,
            )


class PageClient:
    """Fetches checked pages of one query, keeping the politeness delay between requests."""

    def __init__(self, settings: ApiSettings, query: str) -> None:
        self.settings = settings
        self.query = query
        self._last_request: float | None = None

    def _pause(self) -> None:
        if self._last_request is not None:
            remaining = self._last_request + self.settings.delay_seconds - time.monotonic()
            if remaining > 0:
                time.sleep(remaining)

    def _attempt(self, start: int, held: set[str]) -> Page:
        self._pause()
        timeout = self.settings.timeout_seconds
        try:
            body = _read_body(page_url(self.settings, self.query, start), timeout)
            page = parse_page(body)
        except urllib.error.HTTPError as error:
            raise _http_error(error) from None
        except BadPageError as error:
            raise _Refused(str(error)) from None
        except (OSError, http.client.HTTPException) as error:
            raise _Refused(_describe(error, timeout)) from None
        finally:
            self._last_request = time.monotonic()
        _check(page, start, held)
        return page

    def page(self, start: int, held: set[str]) -> Page:
        """The page at ``start``, retried with backoff; raises :class:`PageError`."""
        failures = 0
        while True:
            try:
                return self._attempt(start, held)
            except _Refused as refused:
                failures += 1
                if not refused.retryable or failures > self.settings.retries:
                    raise PageError(refused, failures) from None
                wait = self.settings.backoff_seconds * 2 ** (failures - 1)
                logger.warning(
                    "arXiv API, offset %d: %s; retrying in %gs", start, refused.reason, wait
                )
                time.sleep(wait)
