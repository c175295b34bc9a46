"""Strict reading of one arXiv API result page (an Atom feed with OpenSearch counts).

Anything that is not a complete Atom feed with ``opensearch:totalResults`` - an HTML "rate
exceeded" page, an empty body, a page cut off mid-transfer, an entry without its fields - is
refused with :class:`BadPageError`, so that the caller retries instead of taking it as the end
of the results. The standard library's expat parser never fetches external entities.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any

from data_builders.arxiv.records import parse_timestamp, split_id

ATOM = "{http://www.w3.org/2005/Atom}"
OPENSEARCH = "{http://a9.com/-/spec/opensearch/1.1/}"
_ERROR_ID = "arxiv.org/api/errors"


class BadPageError(ValueError):
    """A response that is not a usable result page (worth asking again)."""


class QueryRejectedError(ValueError):
    """The API answered with its error feed: the query itself is wrong."""


@dataclass(frozen=True)
class Page:
    """One result page: the total the server reports, where the page starts, its records."""

    total: int
    start: int | None
    records: list[dict[str, Any]]


def _count(root: ET.Element, name: str) -> int | None:
    element = root.find(OPENSEARCH + name)
    if element is None or element.text is None:
        return None
    try:
        value = int(element.text.strip())
    except ValueError:
        raise BadPageError(f"opensearch:{name} is {element.text.strip()!r}") from None
    if value < 0:
        raise BadPageError(f"opensearch:{name} is negative")
    return value


def _text(entry: ET.Element, name: str, where: str) -> str:
    element = entry.find(ATOM + name)
    if element is None or element.text is None or not element.text.strip():
        raise BadPageError(f"{where} has no <{name}>")
    return element.text


def _record(entry: ET.Element, position: int) -> dict[str, Any]:
    raw_id = _text(entry, "id", f"entry {position}")
    if _ERROR_ID in raw_id:
        summary = entry.findtext(ATOM + "summary") or "no reason given"
        raise QueryRejectedError(f"the API rejected the query: {' '.join(summary.split())}")
    try:
        paper_id, version = split_id(raw_id)
        published = _text(entry, "published", raw_id)
        parse_timestamp(published)
    except ValueError as error:
        raise BadPageError(f"entry {position}: {error}") from None
    return {
        "id": paper_id,
        "version": version,
        "title": _text(entry, "title", raw_id),
        "summary": _text(entry, "summary", raw_id),
        "published": published.strip(),
        "categories": [
            term
            for term in (c.get("term") for c in entry.findall(ATOM + "category"))
            if term is not None
        ],
    }


def parse_page(body: bytes) -> Page:
    """The page in ``body``; :class:`BadPageError` when it is not a whole Atom result feed."""
    if not body.strip():
        raise BadPageError("empty response body")
    try:
        root = ET.fromstring(body)
    except ET.ParseError as error:
        start = body.lstrip()[:60].decode("utf-8", "replace")
        raise BadPageError(f"not well-formed XML ({error}); it starts {start!r}") from None
    if root.tag != ATOM + "feed":
        raise BadPageError(f"not an Atom feed (root element {root.tag!r})")
    total = _count(root, "totalResults")
    if total is None:
        raise BadPageError("no opensearch:totalResults")
    records = [_record(entry, i) for i, entry in enumerate(root.findall(ATOM + "entry"))]
    return Page(total=total, start=_count(root, "startIndex"), records=records)
