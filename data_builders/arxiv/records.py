"""One arXiv paper as the corpus builder sees it, and the text/date normalisation rules."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from email.utils import parsedate_to_datetime

_ID_VERSION = re.compile(r"^(?P<base>.+?)(?:v(?P<version>\d+))?$")
_ABS_URL = re.compile(r"^https?://(?:export\.)?arxiv\.org/abs/")


@dataclass(frozen=True)
class Paper:
    """A paper: its arXiv id (no version), first-version submission date and cleaned text."""

    id: str
    title: str
    text: str
    published: date
    categories: tuple[str, ...]
    version: int = 1


def normalize_whitespace(text: str) -> str:
    """Collapse runs of whitespace and line breaks into single spaces and strip the ends."""
    return " ".join(text.split())


def split_id(raw: str) -> tuple[str, int]:
    """``"http://arxiv.org/abs/2401.00001v3"`` -> ``("2401.00001", 3)`` (version 1 if absent)."""
    match = _ID_VERSION.match(_ABS_URL.sub("", raw.strip()))
    if match is None or not match.group("base"):
        raise ValueError(f"not an arXiv id: {raw!r}")
    version = match.group("version")
    return match.group("base"), int(version) if version else 1


def parse_cli_date(value: str) -> date:
    """Parse ``YYYY-MM`` (first day of the month) or ``YYYY-MM-DD``."""
    for fmt in ("%Y-%m-%d", "%Y-%m"):
        try:
            return datetime.strptime(value, fmt).date()
        except ValueError:
            continue
    raise ValueError(f"expected YYYY-MM or YYYY-MM-DD, got {value!r}")


_UTC = timezone(timedelta(0))  # datetime.UTC needs Python 3.11
_MONTHS = {
    name: i
    for i, name in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}


def _rfc2822_gmt_date(text: str) -> date | None:
    """Fast path for ``Mon, 2 Apr 2007 19:18:42 GMT`` (the snapshot's only format)."""
    parts = text.split()
    if len(parts) != 6 or parts[5] not in ("GMT", "UTC") or parts[2] not in _MONTHS:
        return None
    try:
        return date(int(parts[3]), _MONTHS[parts[2]], int(parts[1]))
    except ValueError:
        return None


def parse_timestamp(value: str) -> date:
    """UTC calendar date of an arXiv timestamp in any of the formats the sources use.

    ISO (``2024-01-02T03:04:05Z``, ``2024-01-02 03:04:05``, ``2024-01-02``) and RFC 2822
    (``Mon, 2 Apr 2007 19:18:42 GMT``, the bulk snapshot's ``versions[].created``).
    """
    text = value.strip()
    fast = _rfc2822_gmt_date(text)
    if fast is not None:
        return fast
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        try:
            parsed = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError) as error:
            raise ValueError(f"unrecognised timestamp {value!r}") from error
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(_UTC)
    return parsed.date()
