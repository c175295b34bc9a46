"""bench.prepare: cutting, dropping, sampling, determinism, CLI, regeneration, demo data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from transformers import AutoTokenizer

from bench import specs
from bench.demo_data import demo_qa_path, demo_regeneration_records
from bench.prepare.cli import (
    main,
    prepare_benchmark,
    prepare_regeneration,
    prepare_regeneration_from_texts,
)
from bench.prepare.cut import count_tokens, cut_to_tokens
from bench.prepare.mrqa import read_mrqa
from bench.substrate.manifest import write_manifest
from bench.tiny import train_tokenizer

QA_BENCHMARKS = [spec.name for spec in specs.benchmarks("qa")]

SHARED = Path(__file__).resolve().parents[3] / ".." / "shared"
SQUAD_DEV = SHARED / "data" / "mrqa_dev" / "SQuAD.jsonl.gz"
GPT2 = SHARED / "data" / "gpt2_tokenizer"
QA_COLUMNS = ["qid", "context_id", "context", "question", "answers", "source", "context_tokens"]


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory) -> Path:
    texts = [s.context for s in read_mrqa(demo_qa_path())]
    texts += [r["text"] for r in demo_regeneration_records()]
    return train_tokenizer(texts, tmp_path_factory.mktemp("tok"), vocab_size=400)


@pytest.fixture(scope="module")
def tokenizer(tokenizer_dir):
    return AutoTokenizer.from_pretrained(str(tokenizer_dir))


def read_rows(path: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = pq.read_table(path).to_pylist()
    return rows


def manifest_of(parquet: Path) -> dict[str, Any]:
    manifest: dict[str, Any] = json.loads((parquet.parent / "manifest.json").read_text())
    return manifest


def test_demo_file_covers_every_benchmark():
    samples = list(read_mrqa(demo_qa_path()))
    by_benchmark = {b: [s for s in samples if s.metadata["benchmark"] == b] for b in QA_BENCHMARKS}
    assert all(len(v) == 3 for v in by_benchmark.values())
    for s in samples:
        assert 55 <= len(s.context.split()) <= 150
        assert len(s.questions) == 3
        assert all(any(a in s.context for a in q.answers) for q in s.questions)
    assert len(demo_regeneration_records()) == 12


@pytest.mark.parametrize("name", QA_BENCHMARKS)
def test_prepare_demo_subsets(tmp_path, tokenizer, name):
    parquet = prepare_benchmark(
        name,
        demo_qa_path(),
        tmp_path,
        tokenizer,
        max_context_tokens=64,
        subset=name,
        show_progress=False,
    )
    assert parquet == tmp_path / name / "test.parquet"
    assert pq.read_schema(parquet).names == QA_COLUMNS
    rows = read_rows(parquet)
    counts = manifest_of(parquet)["counts"]
    assert counts["contexts_read"] == 3 and counts["questions_read"] == 9
    assert counts["dropped_answer_cut_off"] > 0  # the end-of-context answers are cut off
    assert counts["questions_kept"] + counts["dropped_answer_cut_off"] == 9
    assert len(rows) == counts["questions_selected"] == counts["questions_kept"]
    originals = {s.context_id: s.context for s in read_mrqa(demo_qa_path(), clean_markup=True)}
    for row in rows:
        assert row["qid"].startswith(row["context_id"])
        assert originals[row["context_id"]].startswith(row["context"])
        assert row["context_tokens"] == count_tokens(tokenizer, row["context"]) <= 64
        assert any(a in row["context"] for a in row["answers"])
        assert "[PAR]" not in row["context"]
    assert (parquet.parent / "README.md").read_text().count("answer cut off by the limit") == 1


def test_large_limit_keeps_everything_and_markup_option(tmp_path, tokenizer):
    parquet = prepare_benchmark(
        "hotpotqa",
        demo_qa_path(),
        tmp_path,
        tokenizer,
        max_context_tokens=10_000,
        subset="hotpotqa",
        clean_markup=False,
        show_progress=False,
    )
    rows = read_rows(parquet)
    assert len(rows) == 9 and all("[TLE]" in r["context"] for r in rows)
    assert manifest_of(parquet)["args"]["clean_markup"] is False


def test_deterministic_bytes(tmp_path, tokenizer_dir):
    outputs = []
    for run in ("a", "b"):
        parquet = prepare_benchmark(
            "squad",
            demo_qa_path(),
            tmp_path / run,
            str(tokenizer_dir),
            max_context_tokens=64,
            limit=20,
            seed=3,
            show_progress=False,
        )
        outputs.append({p.name: p.read_bytes() for p in parquet.parent.iterdir()})
    assert outputs[0] == outputs[1]
    assert sorted(outputs[0]) == ["README.md", "manifest.json", "test.parquet"]


def test_sampling_is_seeded_nested_and_in_source_order(tmp_path, tokenizer):
    def qids(limit: int | None, seed: int) -> list[str]:
        out = tmp_path / f"{limit}-{seed}"
        parquet = prepare_benchmark(
            "race",
            demo_qa_path(),
            out,
            tokenizer,
            max_context_tokens=400,
            limit=limit,
            seed=seed,
            show_progress=False,
        )
        return [r["qid"] for r in read_rows(parquet)]

    everything = qids(None, 0)
    assert len(everything) == 45
    small, large = qids(8, 0), qids(20, 0)
    assert len(small) == 8 and set(small) <= set(large)
    assert small == [q for q in everything if q in small]  # source order kept
    assert qids(8, 1) != small


def test_cut_to_tokens(tokenizer):
    text = read_mrqa(demo_qa_path()).__next__().context
    cut = cut_to_tokens(tokenizer, text, 20)
    assert cut is not None and text.startswith(cut[0]) and cut[1] == count_tokens(tokenizer, cut[0])
    assert cut[1] <= 20
    assert cut_to_tokens(tokenizer, text, 10_000) == (text, count_tokens(tokenizer, text))
    exact = cut_to_tokens(tokenizer, text, 17, exact=True)
    assert exact is not None and exact[1] == 17
    assert cut_to_tokens(tokenizer, "short", 50, exact=True) is None
    with pytest.raises(ValueError, match="max_tokens"):
        cut_to_tokens(tokenizer, text, -1)


def test_regeneration_from_texts(tmp_path, tokenizer):
    records = [*demo_regeneration_records(), {"id": "tiny", "text": "Too short."}]
    parquet = prepare_regeneration_from_texts(
        records, tmp_path, tokenizer, lengths=[64, 32], show_progress=False
    )
    rows = read_rows(parquet)
    assert pq.read_schema(parquet).names == ["id", "text", "n_tokens", "length"]
    assert [r["length"] for r in rows] == [32] * 12 + [64] * 12
    for row in rows:
        assert row["n_tokens"] == row["length"] == count_tokens(tokenizer, row["text"])
    counts = manifest_of(parquet)["counts"]
    assert counts["32"] == {"read": 13, "dropped_too_short": 1, "kept": 12, "selected": 12}


def write_corpus(folder: Path, length: int, texts: dict[str, str], drop: str | None = None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    data = {
        "id": list(texts),
        "text": list(texts.values()),
        "n_tokens": [len(t.split()) for t in texts.values()],
        "length": [length] * len(texts),
        "published": ["2024-02-01"] * len(texts),
    }
    if drop:
        del data[drop]
    pq.write_table(pa.table(data), folder / f"test_len{length}.parquet")
    write_manifest(folder, {"builder": "tests"}, "write_corpus in tests/bench/prepare")


def test_regeneration_from_corpus_folder(tmp_path, tokenizer):
    texts = {r["id"]: r["text"] for r in demo_regeneration_records()}
    corpus = tmp_path / "corpus"
    write_corpus(corpus, 32, texts)
    write_corpus(corpus, 48, dict(list(texts.items())[:5]))
    parquet = prepare_regeneration(
        corpus, tmp_path / "out", tokenizer, lengths=[32, 48], limit=4, seed=1, show_progress=False
    )
    rows = read_rows(parquet)
    assert [r["length"] for r in rows] == [32] * 4 + [48] * 4
    assert all(count_tokens(tokenizer, r["text"]) == r["length"] for r in rows)
    assert set(manifest_of(parquet)["source"]["sha256"]) == {
        "test_len32.parquet",
        "test_len48.parquet",
    }
    with pytest.raises(FileNotFoundError, match=r"test_len96\.parquet not found"):
        prepare_regeneration(corpus, tmp_path / "out", tokenizer, lengths=[96], show_progress=False)
    write_corpus(tmp_path / "bad", 32, texts, drop="text")
    with pytest.raises(ValueError, match=r"missing column\(s\) \['text'\]"):
        prepare_regeneration(tmp_path / "bad", tmp_path / "o", tokenizer, [32], show_progress=False)


def test_bad_arguments(tmp_path, tokenizer):
    with pytest.raises(ValueError, match="no Hugging Face source"):
        prepare_benchmark("arxivqa", "hf", tmp_path, tokenizer, show_progress=False)
    with pytest.raises(ValueError, match="unknown QA benchmark"):
        prepare_benchmark("squad2", demo_qa_path(), tmp_path, tokenizer)
    with pytest.raises(FileNotFoundError, match="is not a file"):
        prepare_benchmark("squad", tmp_path / "nope.jsonl", tmp_path, tokenizer)
    with pytest.raises(ValueError, match="no context has field benchmark == 'nope'"):
        prepare_benchmark("squad", demo_qa_path(), tmp_path, tokenizer, subset="nope")


def test_duplicate_qids_are_rejected(tmp_path, tokenizer):
    line = {
        "context": "Alpha beta.",
        "qas": [{"qid": "same", "question": "?", "answers": ["Alpha"]}],
    }
    path = tmp_path / "dup.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in [{"header": {}}, line, line]) + "\n")
    with pytest.raises(ValueError, match=r"duplicate qid 'same'.* 2 and 3"):
        prepare_benchmark("squad", path, tmp_path, tokenizer, show_progress=False)


def test_cli_help_lists_every_flag(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    for flag in (
        "--source",
        "--out",
        "--tokenizer",
        "--max-context-tokens",
        "--limit",
        "--seed",
        "--subset",
        "--keep-markup",
        "--lengths",
        "--quiet",
    ):
        assert flag in text


def test_cli_demo_and_data_root_default(tmp_path, tokenizer_dir, monkeypatch, capsys):
    monkeypatch.setenv("COMPRESSBENCH_DATA", str(tmp_path / "root"))
    code = main(
        [
            "arxivqa",
            "--source",
            str(demo_qa_path()),
            "--tokenizer",
            str(tokenizer_dir),
            "--subset",
            "arxivqa",
            "--max-context-tokens",
            "64",
            "--quiet",
        ]
    )
    assert code == 0
    parquet = tmp_path / "root" / "arxivqa" / "test.parquet"
    assert capsys.readouterr().out.strip() == str(parquet)
    manifest = manifest_of(parquet)
    assert manifest["args"]["max_context_tokens"] == 64
    assert manifest["tokenizer"]["tokenizer_json_sha256"]
    assert manifest["source"]["sha256"] and manifest["output"]["rows"] == len(read_rows(parquet))


@pytest.mark.skipif(
    not (SQUAD_DEV.is_file() and GPT2.is_dir()), reason=f"shared data not found under {SHARED}"
)
def test_real_squad_dev_with_gpt2(tmp_path):
    args = [
        "squad",
        "--source",
        str(SQUAD_DEV),
        "--tokenizer",
        str(GPT2),
        "--limit",
        "300",
        "--max-context-tokens",
        "160",
        "--quiet",
    ]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    a, b = (tmp_path / x / "squad" / "test.parquet" for x in "ab")
    assert a.read_bytes() == b.read_bytes()
    rows = read_rows(a)
    counts = manifest_of(a)["counts"]
    assert len(rows) == 300 and counts["questions_read"] == 10507
    assert counts["contexts_truncated"] > 0 and counts["dropped_answer_cut_off"] > 0
    assert (
        counts["questions_kept"]
        == 10507 - counts["dropped_answer_cut_off"] - counts["dropped_answer_not_in_context"]
    )
    assert max(r["context_tokens"] for r in rows) <= 160
    assert {r["source"] for r in rows} == {"SQuAD"}


def test_a_file_of_several_labelled_benchmarks_without_subset_is_named(
        tmp_path: Path, tokenizer: Any, capsys: pytest.CaptureFixture[str]) -> None:
    labels = sorted({str(s.metadata["benchmark"]) for s in read_mrqa(demo_qa_path())})
    mixed = prepare_benchmark("squad", demo_qa_path(), tmp_path / "mixed", tokenizer,
                              show_progress=False)
    warning = capsys.readouterr().err.strip()
    assert warning == (f"warning: {demo_qa_path()} holds contexts of several benchmarks "
                       f"({', '.join(labels)}) and all of them are prepared as squad; give "
                       "--subset squad to take one")
    by_id = {s.context_id: s.metadata["benchmark"] for s in read_mrqa(demo_qa_path())}
    assert {by_id[row["context_id"]] for row in read_rows(mixed)} == set(labels)
    prepare_benchmark("squad", demo_qa_path(), tmp_path / "one", tokenizer, subset="squad",
                      show_progress=False)
    assert capsys.readouterr().err == ""
