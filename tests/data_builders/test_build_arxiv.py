"""End-to-end corpus builds from files: dates, determinism, dedup, overlap, groups, CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from data_builders.arxiv.cli import main
from data_builders.arxiv.tokens import TargetTokenizer
from tests.data_builders.conftest import (
    FIXTURES,
    REPO,
    jsonl_record,
    random_text,
    shared_path,
    write_jsonl,
)

OUTPUTS = ("train", "dev", "test", "test_len16", "test_len64")


def _rows(folder: Path, name: str) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = pq.read_table(folder / f"{name}.parquet").to_pylist()
    return rows


def _ids(folder: Path, name: str) -> set[str]:
    return {str(row["id"]) for row in _rows(folder, name)}


def _build(source: Path, out: Path, tokenizer: str, *extra: str, kind: str = "jsonl") -> int:
    return main(
        [
            "--source",
            kind,
            "--input",
            str(source),
            "--after",
            "2024-01",
            "--before",
            "2024-06",
            "--tokenizer",
            tokenizer,
            "--lengths",
            "16,64",
            "--dev-size",
            "2",
            "--test-size",
            "3",
            "--out",
            str(out),
            *extra,
        ]
    )


@pytest.fixture
def corpus_file(tmp_path: Path) -> Path:
    train = [
        jsonl_record(f"2201.{i:05d}v1", f"2022-01-{i + 1:02d} 10:00:00", random_text(i, 80))
        for i in range(6)
    ]
    evals = [
        jsonl_record(f"2402.{i:05d}v1", f"2024-02-{i + 1:02d} 10:00:00", random_text(100 + i, 80))
        for i in range(8)
    ]
    boundary = [
        jsonl_record("2312.00001v1", "2023-12-31 23:59:59", random_text(200)),
        jsonl_record("2401.00001v1", "2024-01-01 00:00:00", random_text(201)),
        jsonl_record("2406.00001v1", "2024-06-01 00:00:00", random_text(202)),
        jsonl_record("2307.00001v1", "2023-07-01 00:00:00", random_text(203)),
        jsonl_record("2306.00001v1", "2023-06-30 23:59:59", random_text(204)),
    ]
    return write_jsonl(tmp_path / "corpus.jsonl", train + evals + boundary)


def test_date_boundaries(corpus_file: Path, tmp_path: Path, tiny_tokenizer: str) -> None:
    out = tmp_path / "out"
    assert _build(corpus_file, out, tiny_tokenizer, "--dev-size", "100", "--test-size", "100") == 0
    evaluation = _ids(out, "dev") | _ids(out, "test")
    assert "2401.00001" in evaluation
    assert {"2312.00001", "2406.00001", "2307.00001"}.isdisjoint(evaluation | _ids(out, "train"))
    assert "2306.00001" in _ids(out, "train")
    assert not _ids(out, "dev") & _ids(out, "test")
    assert all(str(r["published"]) >= "2024-01-01" for r in _rows(out, "test"))


def test_two_builds_are_byte_identical(
    corpus_file: Path, tmp_path: Path, tiny_tokenizer: str
) -> None:
    first, second = tmp_path / "one", tmp_path / "two"
    assert _build(corpus_file, first, tiny_tokenizer) == 0
    assert _build(corpus_file, second, tiny_tokenizer) == 0
    for name in OUTPUTS:
        assert (first / f"{name}.parquet").read_bytes() == (second / f"{name}.parquet").read_bytes()
    assert (first / "README.md").read_bytes() == (second / "README.md").read_bytes()
    one = json.loads((first / "manifest.json").read_text())
    two = json.loads((second / "manifest.json").read_text())
    assert one["outputs"] == two["outputs"]
    assert one["inputs"][0]["sha256"] == two["inputs"][0]["sha256"]
    third = tmp_path / "three"
    assert _build(corpus_file, third, tiny_tokenizer, "--seed", "7") == 0
    assert _ids(third, "test") | _ids(third, "dev") != _ids(first, "test") | _ids(first, "dev")


def test_schema_groups_and_loading(corpus_file: Path, tmp_path: Path, tiny_tokenizer: str) -> None:
    import datasets

    out = tmp_path / "out"
    assert _build(corpus_file, out, tiny_tokenizer) == 0
    tokenizer = TargetTokenizer.load(tiny_tokenizer)
    test_rows = {str(r["id"]): r for r in _rows(out, "test")}
    assert len(test_rows) == 3 and len(_ids(out, "dev")) == 2
    for length in (16, 64):
        rows = _rows(out, f"test_len{length}")
        assert {str(r["id"]) for r in rows} <= set(test_rows)
        assert rows, "every test text is long enough"
        for row in rows:
            assert row["n_tokens"] == row["length"] == length
            assert tokenizer.count([str(row["text"])]) == [length]
            assert str(test_rows[str(row["id"])]["text"]).startswith(str(row["text"]))
    table = pq.read_table(out / "train.parquet")
    assert table.column_names == ["id", "title", "text", "published", "categories", "n_tokens"]
    assert table.column("id").to_pylist() == sorted(table.column("id").to_pylist())
    loaded = datasets.load_dataset("parquet", data_dir=str(out))
    assert {k: v.num_rows for k, v in loaded.items()} == {"train": 7, "validation": 2, "test": 3}
    regeneration = datasets.load_dataset(str(out), "regeneration")
    assert regeneration["len16"].num_rows == 3
    card = (out / "README.md").read_text()
    assert "FIRST" in card and "v1" in card and tiny_tokenizer in card


def test_dedup_ids_and_abstracts(tmp_path: Path, tiny_tokenizer: str) -> None:
    text = random_text(5)
    records = [
        jsonl_record("2402.00001v1", "2024-02-01 00:00:00", "old text " + random_text(6)),
        jsonl_record("2402.00001v2", "2024-02-01 00:00:00", random_text(7)),
        jsonl_record("2312.00009v2", "2024-02-05 00:00:00", random_text(8)),
        jsonl_record("2312.00009v1", "2023-12-30 00:00:00", random_text(9)),
        jsonl_record("2403.00001v1", "2024-03-01 00:00:00", text),
        jsonl_record("2403.00002v1", "2024-03-02 00:00:00", "  " + text.replace(" ", "\n ")),
        jsonl_record("2201.00001v1", "2022-01-01 00:00:00", random_text(10)),
    ]
    out = tmp_path / "out"
    assert (
        _build(write_jsonl(tmp_path / "d.jsonl", records), out, tiny_tokenizer, "--test-size", "10")
        == 0
    )
    rows = {str(r["id"]): r for r in _rows(out, "test") + _rows(out, "dev")}
    assert set(rows) == {"2402.00001", "2403.00001"}
    assert rows["2402.00001"]["text"] == random_text(7)
    counts = json.loads((out / "manifest.json").read_text())["counts"]
    assert counts["duplicate_abstracts_removed"] == 1
    assert counts["duplicate_ids_merged"] == 2
    assert "duplicate_abstracts_removed | 1" in (out / "README.md").read_text()


def test_overlap_audit(tmp_path: Path, tiny_tokenizer: str) -> None:
    shared = random_text(42, 20)
    records = [
        jsonl_record("2201.00001v1", "2022-01-01 00:00:00", random_text(1) + " " + shared),
        jsonl_record("2402.00001v1", "2024-02-01 00:00:00", shared + " " + random_text(2)),
        jsonl_record("2402.00002v1", "2024-02-02 00:00:00", random_text(3)),
        jsonl_record("2402.00003v1", "2024-02-03 00:00:00", random_text(4)),
    ]
    source = write_jsonl(tmp_path / "o.jsonl", records)
    out = tmp_path / "removed"
    assert _build(source, out, tiny_tokenizer, "--dev-size", "0", "--test-size", "3") == 0
    assert _ids(out, "test") == {"2402.00002", "2402.00003"}
    overlap = json.loads((out / "manifest.json").read_text())["overlap"]
    assert overlap["removed_ids"] == ["2402.00001"] and overlap["with_overlap"] == 1
    kept = tmp_path / "kept"
    assert (
        _build(
            source, kept, tiny_tokenizer, "--dev-size", "0", "--test-size", "3", "--keep-overlap"
        )
        == 0
    )
    assert "2402.00001" in _ids(kept, "test")
    summary = json.loads((kept / "manifest.json").read_text())["overlap"]
    assert summary["removed"] == 0 and summary["kept_with_overlap"] == 1
    assert 0 < summary["kept_max_fraction"] < 1


def test_snapshot_source_uses_first_version(tmp_path: Path, tiny_tokenizer: str) -> None:
    out = tmp_path / "out"
    assert (
        _build(
            FIXTURES / "snapshot_versions.jsonl",
            out,
            tiny_tokenizer,
            "--test-size",
            "10",
            kind="snapshot",
        )
        == 0
    )
    assert _ids(out, "test") == {"2401.22222", "2402.33333", "2403.44444"}
    assert _ids(out, "train") == {"2201.55555", "2105.66666"}


def test_malformed_input_fails_or_is_skipped(
    tmp_path: Path, tiny_tokenizer: str, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "bad.jsonl"
    good = [jsonl_record(f"2402.{i:05d}", "2024-02-01 00:00:00", random_text(i)) for i in range(3)]
    lines = [json.dumps(r) for r in good]
    lines.insert(1, json.dumps({"link": "x/2402.9", "title": "t", "abstract": "a"}))
    source.write_text("\n".join(lines) + "\n")
    assert _build(source, tmp_path / "a", tiny_tokenizer) == 2
    assert f"{source}:2: field 'published'" in capsys.readouterr().err
    assert _build(source, tmp_path / "b", tiny_tokenizer, "--skip-bad") == 0
    counts = json.loads((tmp_path / "b" / "manifest.json").read_text())["counts"]
    assert counts["bad_records_skipped"] == 1


def test_bad_arguments(corpus_file: Path, tmp_path: Path, tiny_tokenizer: str) -> None:
    assert _build(corpus_file, tmp_path / "x", tiny_tokenizer, "--train-before", "2024-03") == 2
    with pytest.raises(SystemExit):
        _build(corpus_file, tmp_path / "y", tiny_tokenizer, "--lengths", "0,x")


def test_real_arxiver_file_with_gpt2(tmp_path: Path) -> None:
    source = shared_path("data", "arxiv", "arxiver_2013-2025_all.jsonl.gz")
    gpt2 = shared_path("data", "gpt2_tokenizer")
    out = tmp_path / "out"
    code = main(
        [
            "--source",
            "jsonl",
            "--input",
            str(source),
            "--after",
            "2024-01",
            "--before",
            "2024-05",
            "--train-before",
            "2013-07",
            "--tokenizer",
            str(gpt2),
            "--dev-size",
            "20",
            "--test-size",
            "40",
            "--lengths",
            "96,192",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["records_read"] == 96010
    assert manifest["outputs"]["test.parquet"]["rows"] == 40
    tokenizer = TargetTokenizer.load(str(gpt2))
    for row in _rows(out, "test_len96"):
        assert tokenizer.count([str(row["text"])]) == [96]
    assert all("2013-01-01" <= str(r["published"]) < "2013-07-01" for r in _rows(out, "train"))


def test_module_entry_point_help() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.build_arxiv", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    for flag in (
        "--after",
        "--before",
        "--train-before",
        "--categories",
        "--source",
        "--input",
        "--api-url",
        "--tokenizer",
        "--lengths",
        "--dev-size",
        "--test-size",
        "--seed",
        "--out",
        "--keep-overlap",
        "--skip-bad",
    ):
        assert flag in done.stdout
