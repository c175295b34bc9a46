"""File sources: the Kaggle snapshot (v1 date), JSONL, gzip, malformed lines."""

from __future__ import annotations

import gzip
import json
import shutil
from collections import Counter
from datetime import date
from pathlib import Path

import pytest

from bench.substrate.errors import InputError
from data_builders.arxiv.records import normalize_whitespace, parse_timestamp, split_id
from data_builders.arxiv.sources import BadRecordError, iter_jsonl, iter_snapshot
from tests.data_builders.conftest import FIXTURES, jsonl_record, shared_path, write_jsonl


def test_snapshot_head_uses_v1_created_not_update_date() -> None:
    path = shared_path("data", "arxiv", "kaggle_arxiv-metadata-oai-snapshot_head.jsonl")
    counts: Counter[str] = Counter()
    papers = list(iter_snapshot(path, skip_bad=False, counts=counts))
    assert len(papers) == counts["records_read"] == 200
    first = papers[0]
    assert first.id == "0704.0001"
    assert first.published == date(2007, 4, 2)
    raw = json.loads(path.read_text(encoding="utf-8").splitlines()[0])
    assert raw["update_date"] != "2007-04-02"
    assert "\n" not in first.text and first.text == first.text.strip()
    assert first.categories == ("hep-ph",)


def test_snapshot_fixture_with_several_versions(tmp_path: Path) -> None:
    counts: Counter[str] = Counter()
    plain = FIXTURES / "snapshot_versions.jsonl"
    papers = {p.id: p for p in iter_snapshot(plain, False, counts)}
    assert papers["2312.11111"].published == date(2023, 12, 31)  # v2 is 2024-02-01
    assert papers["2402.33333"].version == 3
    assert papers["2201.55555"].published == date(2022, 1, 3)
    gz = tmp_path / "snapshot.json.gz"
    with plain.open("rb") as source, gzip.open(gz, "wb") as target:
        shutil.copyfileobj(source, target)
    assert list(iter_snapshot(gz, False, Counter())) == list(papers.values())


def test_jsonl_record_parsing(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "a.jsonl",
        [jsonl_record("2401.00001v2", "2024-01-01 00:00:01", "Some\n  text here")],
    )
    (paper,) = iter_jsonl(path, False, Counter())
    assert (paper.id, paper.version, paper.published) == ("2401.00001", 2, date(2024, 1, 1))
    assert paper.text == "Some text here"


@pytest.mark.parametrize(
    ("line", "field"),
    [
        ("{not json", "<line>"),
        ('["a list"]', "<line>"),
        (json.dumps({"title": "t", "abstract": "a", "link": "x/1"}), "published"),
        (json.dumps(jsonl_record("1", "yesterday", "text")), "published"),
        (json.dumps(jsonl_record("1", "2024-01-01", "   ")), "abstract"),
        (json.dumps({"published": "2024-01-01", "abstract": "a", "title": "t"}), "id"),
    ],
)
def test_malformed_jsonl_line_names_file_line_and_field(
    tmp_path: Path, line: str, field: str
) -> None:
    good = json.dumps(jsonl_record("2401.1", "2024-01-01", "fine"))
    path = tmp_path / "bad.jsonl"
    path.write_text(f"{good}\n\n{line}\n{good}\n", encoding="utf-8")
    with pytest.raises(BadRecordError) as caught:
        list(iter_jsonl(path, False, Counter()))
    assert (caught.value.line, caught.value.field) == (3, field)
    assert str(path) in str(caught.value) and f":3: field {field!r}" in str(caught.value)
    counts: Counter[str] = Counter()
    assert len(list(iter_jsonl(path, True, counts))) == 2
    assert counts["bad_records_skipped"] == 1


def test_malformed_snapshot_versions(tmp_path: Path) -> None:
    record = json.loads((FIXTURES / "snapshot_versions.jsonl").read_text().splitlines()[0])
    record["versions"] = [{"version": "v2", "created": "Thu, 1 Feb 2024 10:00:00 GMT"}]
    path = write_jsonl(tmp_path / "s.jsonl", [record])
    with pytest.raises(BadRecordError, match=r"s\.jsonl:1: field 'versions': no v1 entry"):
        list(iter_snapshot(path, False, Counter()))


def test_helpers() -> None:
    assert normalize_whitespace(" a\n\tb  c ") == "a b c"
    assert split_id("https://arxiv.org/abs/hep-th/9901001v12") == ("hep-th/9901001", 12)
    assert parse_timestamp("2023-12-31T23:30:00-02:00") == date(2024, 1, 1)
    assert parse_timestamp("Mon, 2 Apr 2007 19:18:42 GMT") == date(2007, 4, 2)


def test_bad_records_are_input_errors() -> None:
    error = BadRecordError("papers.jsonl", 7, "abstract", "empty text")
    assert isinstance(error, InputError)
    assert (error.problem, error.path, error.line, error.field) == (
        "empty text", "papers.jsonl", 7, "abstract")
    assert str(error) == "papers.jsonl:7: field 'abstract': empty text"
