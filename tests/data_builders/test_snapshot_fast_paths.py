"""The snapshot reader's shortcuts give exactly what the plain rules give."""

from __future__ import annotations

import json
import sys
from collections import Counter
from datetime import date
from pathlib import Path

import pytest

from data_builders.arxiv.records import normalize_whitespace, parse_timestamp
from data_builders.arxiv.sources import BadRecordError, _created_date, clean_text, iter_snapshot
from tests.data_builders.conftest import FIXTURES, shared_path

SPLIT_AT = [chr(c) for c in range(sys.maxunicode + 1) if len(f"a{chr(c)}b".split()) == 2]
LONG = "word " * 40


def _texts() -> list[str]:
    texts = ["", " ", "a", "plain text", "  lead", "trail  ", "a  b", "a\nb", "a\n b", "é  x"]
    for char in SPLIT_AT:
        texts += [f"{LONG}x{char}y {LONG}", f"{char}{LONG}", f"{LONG}{char}",
                  f"{LONG}{char}{char}z"]
    texts += [f"  {LONG}\n{LONG}\n", f"{LONG}\n\n{LONG}", f"{LONG}\n  {LONG}", f"{LONG}\x00{LONG}"]
    return texts


@pytest.mark.parametrize("text", _texts())
def test_clean_text_is_normalize_whitespace(text: str) -> None:
    assert clean_text(text) == normalize_whitespace(text)


def test_clean_text_on_the_snapshot_head() -> None:
    path = shared_path("data", "arxiv", "kaggle_arxiv-metadata-oai-snapshot_head.jsonl")
    for line in path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        for field in ("title", "abstract"):
            assert clean_text(record[field]) == normalize_whitespace(record[field])


@pytest.mark.parametrize("created", [
    "Mon, 2 Apr 2007 19:18:42 GMT",
    "Tue, 2 Apr 2007 00:00:00 GMT",
    "  Mon, 2 Apr 2007 19:18:42 GMT",
    "Mon, 2 Apr 2007 19:18:4\t GMT",
    "Mon, 2 Apr 2007 19 18 42 GMT",
    "Mon, 30 Feb 2007 19:18:42 GMT",
    "Mon, 2 Apr 2007 19:18:42 UTC",
    "Mon, 2 Apr 2007 19:18:42 +0000",
    "2007-04-02T23:30:00-02:00",
])
def test_remembered_days_give_what_parse_timestamp_gives(created: str) -> None:
    for _ in range(2):
        try:
            expected: date | str = parse_timestamp(created)
        except ValueError as error:
            expected = str(error)
        try:
            found: date | str = _created_date(created)
        except ValueError as error:
            found = str(error)
        assert found == expected


def test_lines_orjson_refuses_go_through_the_standard_library(tmp_path: Path) -> None:
    record = json.loads((FIXTURES / "snapshot_versions.jsonl").read_text().splitlines()[0])
    huge = json.dumps({**record, "extra": 2**70})
    not_a_number = json.dumps({**record, "extra": float("nan")})
    path = tmp_path / "snapshot.json"
    path.write_text(f"{huge}\n  \n{not_a_number}\n", encoding="utf-8")
    counts: Counter[str] = Counter()
    papers = list(iter_snapshot(path, False, counts))
    assert len(papers) == counts["records_read"] == 2 and papers[0] == papers[1]
    path.write_text(f"{huge}\n{{\"id\": NaN,\n", encoding="utf-8")
    with pytest.raises(BadRecordError) as caught:
        list(iter_snapshot(path, False, Counter()))
    try:
        json.loads('{"id": NaN,')
    except json.JSONDecodeError as error:
        message = error.msg
    assert str(caught.value) == f"{path}:2: field '<line>': invalid JSON ({message})"


def test_unusual_version_labels(tmp_path: Path) -> None:
    record = json.loads((FIXTURES / "snapshot_versions.jsonl").read_text().splitlines()[0])
    created = record["versions"][0]["created"]
    path = tmp_path / "snapshot.json"
    record["versions"] = [{"version": "v01", "created": created},
                          {"version": "v120", "created": created}]
    path.write_text(json.dumps(record) + "\n", encoding="utf-8")
    [paper] = iter_snapshot(path, False, Counter())
    assert paper.version == 120
    for label in ("v²", 1, "1", ["v1"]):
        record["versions"] = [{"version": label, "created": created}]
        path.write_text(json.dumps(record) + "\n", encoding="utf-8")
        with pytest.raises(BadRecordError, match=r"bad version label"):
            list(iter_snapshot(path, False, Counter()))
