"""The streaming corpus build: spilled runs, per-id merge, repeated abstracts, the split
writer and the audit give what the plain in-memory rules give."""

from __future__ import annotations

import io
import random
from collections import Counter
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from bench.substrate.parquet import PARQUET_OPTIONS, write_parquet
from data_builders.arxiv import overlap, runs
from data_builders.arxiv.cli import main
from data_builders.arxiv.records import Paper
from data_builders.arxiv.runs import PaperFile, SortedRuns
from data_builders.arxiv.splits import AbstractIndex, Windows, merge_ids
from data_builders.arxiv.tables import SplitWriter, split_table
from tests.data_builders.conftest import jsonl_record, random_text, write_jsonl

WINDOWS = Windows(train_before=date(2023, 7, 1), after=date(2024, 1, 1),
                  train_after=date(2020, 1, 1), before=date(2024, 6, 1))


def _papers(count: int, seed: int = 0) -> list[Paper]:
    """Records with repeated ids (other versions and dates) and copied abstracts."""
    rng = random.Random(seed)
    papers: list[Paper] = []
    for index in range(count):
        if papers and rng.random() < 0.3:
            earlier = rng.choice(papers)
            shift = timedelta(days=rng.randrange(-900, 900))
            paper = replace(earlier, published=earlier.published + shift,
                            version=rng.randrange(1, 4), text=random_text(rng.randrange(10**6)))
        else:
            day = date(2019, 1, 1) + timedelta(days=rng.randrange(2200))
            paper = Paper(f"{rng.randrange(10**5):05d}", f"t{index}", random_text(index, 20), day,
                          ("cs.CL",), rng.randrange(1, 4))
        if papers and rng.random() < 0.1:
            paper = replace(paper, text=rng.choice(papers).text)
        papers.append(paper)
    return papers


def _in_memory(papers: list[Paper]) -> tuple[list[tuple[Paper, str]], Counter[str]]:
    """The rules written out plainly: merge per id in input order, move dates earlier from
    records outside the windows, then drop abstracts seen earlier (by date, then id)."""
    counts: Counter[str] = Counter()
    kept: dict[str, Paper] = {}
    earliest_outside: dict[str, date] = {}
    for paper in papers:
        if WINDOWS.of(paper.published) is None:
            previous = earliest_outside.get(paper.id, paper.published)
            earliest_outside[paper.id] = min(previous, paper.published)
        elif paper.id in kept:
            counts["duplicate_ids_merged"] += 1
            current = kept[paper.id]
            newest = paper if paper.version > current.version else current
            kept[paper.id] = replace(newest, published=min(current.published, paper.published))
        else:
            kept[paper.id] = paper
    merged = []
    for paper_id in sorted(kept.keys() | earliest_outside.keys()):
        found = kept.get(paper_id)
        outside = earliest_outside.get(paper_id)
        if found is not None and outside is not None and outside < found.published:
            counts["duplicate_ids_merged"] += 1
            found = replace(found, published=outside)
        window = WINDOWS.of(found.published) if found is not None else None
        if found is None or window is None:
            counts["outside_dates"] += 1
            continue
        merged.append((found, window))
    first: dict[str, tuple[date, str]] = {}
    for paper, _ in merged:
        key = (paper.published, paper.id)
        first[paper.text] = min(first.get(paper.text, key), key)
    unique = [(p, w) for p, w in merged if first[p.text] == (p.published, p.id)]
    return unique, counts


@pytest.mark.parametrize("run_size", [1, 7, 10_000])
def test_runs_merge_and_repeats_match_the_in_memory_rules(tmp_path: Path, run_size: int) -> None:
    papers = _papers(600)
    spilled = SortedRuns(tmp_path, run_size=run_size, batch_rows=3)
    for paper in papers:
        spilled.add(paper, WINDOWS.of(paper.published) is not None)
    counts: Counter[str] = Counter()
    index = AbstractIndex()
    merged = list(merge_ids(spilled.groups(), WINDOWS, counts))
    for paper, _ in merged:
        index.add(paper)
    repeated = index.repeated()
    unique = [item for item, again in zip(merged, repeated, strict=True) if not again]
    expected, expected_counts = _in_memory(papers)
    assert unique == expected
    assert counts == expected_counts
    assert len(list(tmp_path.glob("run-*.arrow"))) == -(-len(papers) // run_size)


def test_outside_dates_is_counted_even_when_none(tmp_path: Path) -> None:
    counts: Counter[str] = Counter()
    assert list(merge_ids([], WINDOWS, counts)) == []
    assert list(counts.items()) == [("outside_dates", 0)]


def test_groups_keep_input_order_within_an_id(tmp_path: Path) -> None:
    titles = ["9", "4", "3", "2", "1"]
    papers = [Paper(paper_id, title, "x", date(2024, 1, 1), (), 1)
              for paper_id, title in zip("babab", titles, strict=True)]
    spilled = SortedRuns(tmp_path, run_size=3)
    for paper in papers:
        spilled.add(paper, True)
    groups = [[item.paper.title for item in group] for group in spilled.groups()]
    assert groups == [["4", "2"], ["9", "3", "1"]]


def test_paper_file_takes_positions_in_the_order_asked(tmp_path: Path) -> None:
    papers = _papers(50, seed=3)
    stored = PaperFile(tmp_path / "candidates.arrow", batch_rows=8)
    for paper in papers:
        stored.add(paper)
    stored.close()
    assert stored.ids == [p.id for p in papers]
    assert stored.take([40, 3, 17]) == [papers[40], papers[3], papers[17]]


def _split_rows(count: int, texts: int = 20_000) -> tuple[list[Paper], list[int]]:
    """``count`` rows cycling through ``texts`` different abstracts."""
    papers = [Paper(f"{i:06d}", f"t{i}", random_text(i % texts, 70), date(2020, 1, 1),
                    ("cs.CL",), 1) for i in range(count)]
    return papers, [i % 97 for i in range(count)]


@pytest.mark.parametrize(("rows", "group", "part"), [(0, 10, 3), (5, 10, 3), (95, 10, 3),
                                                     (95, 32, 32), (95, 10, 64),
                                                     (12_000, 5000, 1000)])
def test_split_writer_bytes_are_write_table_bytes(tmp_path: Path, rows: int, group: int,
                                                  part: int) -> None:
    """Row groups of more than a data page (1 MB) are split into pages where the contiguous
    table would be: the parts are joined before a group is written."""
    papers, n_tokens = _split_rows(rows)
    writer = SplitWriter(tmp_path / "split.parquet", row_group_rows=group, part_rows=part)
    for paper, count in zip(papers, n_tokens, strict=True):
        writer.add(paper, count)
    writer.close()
    whole = io.BytesIO()
    pq.write_table(split_table(papers, n_tokens), whole, row_group_size=group, **PARQUET_OPTIONS)
    assert (tmp_path / "split.parquet").read_bytes() == whole.getvalue()
    assert writer.rows == rows


def test_split_writer_settings_are_write_parquet_settings(tmp_path: Path) -> None:
    papers, n_tokens = _split_rows(70_000, texts=700)
    writer = SplitWriter(tmp_path / "streamed.parquet")
    for paper, count in zip(papers, n_tokens, strict=True):
        writer.add(paper, count)
    writer.close()
    write_parquet(split_table(papers, n_tokens), tmp_path / "whole.parquet")
    streamed = (tmp_path / "streamed.parquet").read_bytes()
    assert streamed == (tmp_path / "whole.parquet").read_bytes()
    assert pq.ParquetFile(tmp_path / "streamed.parquet").num_row_groups == 2
    writer = SplitWriter(tmp_path / "empty.parquet")
    writer.close()
    write_parquet(split_table([], []), tmp_path / "empty_whole.parquet")
    empty = (tmp_path / "empty.parquet").read_bytes()
    assert empty == (tmp_path / "empty_whole.parquet").read_bytes()


def test_audit_matches_set_intersection_across_lookup_batches(
        monkeypatch: pytest.MonkeyPatch) -> None:
    shared = random_text(42, 30)
    candidates = [shared + " " + random_text(1, 20), random_text(2, 40), "too short",
                  random_text(3, 15) + " " + shared[:60]]
    train = [random_text(10 + i, 50) for i in range(20)] + [random_text(9, 10) + " " + shared]
    monkeypatch.setattr(overlap, "_LOOKUP_BATCH", 64)
    found = overlap.audit(candidates, iter(train), 5)
    train_grams = {h for text in train for h in overlap.iter_ngram_hashes(text, 5)}
    for text, result in zip(candidates, found, strict=True):
        grams = set(overlap.iter_ngram_hashes(text, 5))
        assert (result.shared, result.total) == (len(grams & train_grams), len(grams))
    assert [r.shared > 0 for r in found] == [True, False, False, True]


def _corpus(path: Path) -> Path:
    records = []
    for i in range(40):
        month = 1 + i % 12
        year = 2022 if i % 3 else 2024
        text = random_text(i % 31, 40) if i % 7 else random_text(1000 + i, 40)
        records.append(jsonl_record(f"{year % 100}{month:02d}.{i % 29:05d}v{1 + i % 3}",
                                    f"{year}-{month:02d}-03 10:00:00", text))
    return write_jsonl(path, records)


def test_build_bytes_do_not_depend_on_the_run_size(tmp_path: Path, tiny_tokenizer: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    source = _corpus(tmp_path / "papers.jsonl")
    arguments = ["--source", "jsonl", "--input", str(source), "--after", "2024-01",
                 "--tokenizer", tiny_tokenizer, "--lengths", "16", "--dev-size", "2",
                 "--test-size", "3"]
    assert main([*arguments, "--out", str(tmp_path / "one")]) == 0
    monkeypatch.setattr(runs, "RUN_SIZE", 2)
    monkeypatch.setattr(runs, "BATCH_ROWS", 1)
    assert main([*arguments, "--out", str(tmp_path / "many")]) == 0
    names = sorted(p.name for p in (tmp_path / "one").iterdir() if p.is_file())
    assert "train.parquet" in names
    for name in names:
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "many" / name).read_bytes()
    assert not list((tmp_path / "many").glob(".spill*"))
