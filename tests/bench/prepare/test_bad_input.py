"""bench.prepare on bad input: one line naming file, line and field, exit 2, nothing written."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import pytest

from bench.prepare.cli import main
from bench.prepare.formats import MRQA_SOURCES
from bench.substrate.errors import DEBUG_ENV
from bench.tiny import train_tokenizer

REPO = Path(__file__).resolve().parents[3]
HEADER = {"header": {"dataset": "SQuAD", "split": "dev"}}
NOT_MRQA = "not MRQA JSONL; use the MRQA version: " + MRQA_SOURCES


def _context(i: int) -> dict[str, Any]:
    text = f"Paper {i} studies alpha beta gamma delta in many settings. " * 5
    return {"id": f"c{i}", "context": text,
            "qas": [{"qid": f"q{i}", "question": "What is studied?", "answers": ["alpha beta"]}]}


def _lines(n: int) -> list[bytes]:
    return [json.dumps(x).encode() + b"\n" for x in [HEADER] + [_context(i) for i in range(n)]]


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    texts = [_context(i)["context"] for i in range(20)]
    return train_tokenizer(texts, tmp_path_factory.mktemp("tok"), vocab_size=300)


def _prepare(source: Path, out: Path, tokenizer_dir: Path, *extra: str) -> list[str]:
    return ["squad", "--source", str(source), "--out", str(out), "--tokenizer",
            str(tokenizer_dir), "--quiet", *extra]


def _fails_with(capsys: pytest.CaptureFixture[str], argv: list[str], out: Path) -> str:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert not out.exists() or not any(out.rglob("*")), "a bad input left files behind"
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err
    return captured.err


@pytest.fixture(autouse=True)
def _no_debug(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DEBUG_ENV, raising=False)


def test_a_bad_byte_is_reported_on_its_own_line(tmp_path: Path, tokenizer_dir: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    lines = _lines(60)
    assert sum(len(line) for line in lines[:49]) > 8192, "line 50 lies past the first read"
    lines[49] = lines[49].replace(b"studies", b"stud\xffies", 1)
    offset = lines[49].index(b"\xff")
    source = tmp_path / "latin1.jsonl"
    source.write_bytes(b"".join(lines))
    out = tmp_path / "out"
    err = _fails_with(capsys, _prepare(source, out, tokenizer_dir), out)
    assert err == (f"error: {source}:50: field '<line>': not UTF-8 (byte 0xff at line offset "
                   f"{offset}); convert the file to UTF-8\n")


def test_a_truncated_gzip_names_the_line_where_it_breaks(
        tmp_path: Path, tokenizer_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = gzip.compress(b"".join(_lines(300)))
    cut = data[: len(data) // 2]
    whole_lines = zlib.decompressobj(31).decompress(cut).count(b"\n")
    source = tmp_path / "cut.jsonl.gz"
    source.write_bytes(cut)
    out = tmp_path / "out"
    err = _fails_with(capsys, _prepare(source, out, tokenizer_dir), out)
    assert err == (f"error: {source}:{whole_lines + 1}: field '<line>': unreadable (Compressed "
                   "file ended before the end-of-stream marker was reached); the file is "
                   "truncated or corrupt; download or copy it again\n")


HOTPOT_ORIGINAL = [{
    "_id": "5a8b57f25542995d1e6f1371", "answer": "yes", "question": "Were both American?",
    "supporting_facts": [["Scott Derrickson", 0]], "type": "comparison", "level": "hard",
    "context": [["Scott Derrickson", ["Scott Derrickson is an American director."]]],
}]
RACE_ORIGINAL = {
    "answers": ["B"], "options": [["a train", "a bus", "a car", "a boat"]],
    "questions": ["How did she travel?"], "article": "She took the bus to school.",
    "id": "high1.txt",
}


@pytest.mark.parametrize(
    ("name", "text", "kind"),
    [
        ("hotpot_dev_distractor_v1.json", json.dumps(HOTPOT_ORIGINAL, indent=1),
         "HotpotQA's original format"),
        ("high1.txt", json.dumps(RACE_ORIGINAL), "RACE's original format"),
        ("race.jsonl", json.dumps(RACE_ORIGINAL) + "\n" + json.dumps(RACE_ORIGINAL) + "\n",
         "RACE's original format"),
        ("squad.json", json.dumps([_context(0), _context(1)]), "a JSON array"),
    ],
)
def test_other_formats_are_named_with_where_mrqa_comes_from(
        tmp_path: Path, tokenizer_dir: Path, capsys: pytest.CaptureFixture[str],
        name: str, text: str, kind: str) -> None:
    source = tmp_path / name
    source.write_text(text, encoding="utf-8")
    out = tmp_path / "out"
    err = _fails_with(capsys, _prepare(source, out, tokenizer_dir), out)
    assert err == f"error: {source}:1: this is {kind}, {NOT_MRQA}\n"
    assert "MRQA 2019 shared task" in err and "--source hf" in err


def test_a_context_line_without_header_says_what_the_header_is(
        tmp_path: Path, tokenizer_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "noheader.jsonl"
    source.write_bytes(b"".join(_lines(3)[1:]))
    out = tmp_path / "out"
    err = _fails_with(capsys, _prepare(source, out, tokenizer_dir), out)
    assert err == (f"error: {source}:1: field 'header': missing; MRQA JSONL is a header line "
                   '{"header": {...}}, then one context object per line\n')


def test_a_missing_source_is_one_line(tmp_path: Path, tokenizer_dir: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "absent.jsonl"
    out = tmp_path / "out"
    err = _fails_with(capsys, _prepare(source, out, tokenizer_dir), out)
    assert err == (f"error: source {source} is not a file (nor one of hf, hf:mrqa, "
                   "hf:mrqa-workshop/mrqa)\n")


def _with_lone_surrogate(context: dict[str, Any], field: str) -> str:
    """Put the escape ``\\ud800`` (half of a UTF-16 pair) at the end of ``field`` of
    ``context``; the text it gave the field."""
    qa = context["qas"][0]
    if field == "context":
        context["context"] += "\ud800"
        return str(context["context"])
    if field == "id":
        context["id"] += "\ud800"
        return str(context["id"])
    if field == "qas[0].answers[0]":
        qa["answers"] = ["alpha \ud800", "alpha beta"]
        return str(qa["answers"][0])
    name = field.removeprefix("qas[0].")
    qa[name] += "\ud800"
    return str(qa[name])


@pytest.mark.parametrize(
    "field", ["context", "id", "qas[0].qid", "qas[0].question", "qas[0].answers[0]"]
)
def test_a_lone_surrogate_is_named_with_its_line_and_field(
        tmp_path: Path, tokenizer_dir: Path, capsys: pytest.CaptureFixture[str],
        field: str) -> None:
    context = _context(4)
    text = _with_lone_surrogate(context, field)
    lines = _lines(8)
    lines[5] = json.dumps(context).encode() + b"\n"
    assert b"\\ud800" in lines[5], "the file holds the escape, valid JSON and valid UTF-8"
    source = tmp_path / "surrogate.jsonl"
    source.write_bytes(b"".join(lines))
    out = tmp_path / "out"
    err = _fails_with(capsys, _prepare(source, out, tokenizer_dir), out)
    assert err == (f"error: {source}:6: field {field!r}: a lone surrogate \\ud800 at character "
                   f"{len(text) - 1}; text must be valid Unicode: fix or remove that escape\n")


def _subprocess(argv: list[str], debug: bool) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    env.pop(DEBUG_ENV, None)
    command = [sys.executable, "-m", "bench.prepare", *argv, *(["--debug"] if debug else [])]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300, check=False)


@pytest.mark.slow
def test_the_command_exits_2_and_debug_shows_the_traceback(tmp_path: Path,
                                                           tokenizer_dir: Path) -> None:
    source = tmp_path / "array.json"
    source.write_text(json.dumps([_context(0)]), encoding="utf-8")
    out = tmp_path / "out"
    plain = _subprocess(_prepare(source, out, tokenizer_dir), debug=False)
    assert plain.returncode == 2 and plain.stdout == ""
    assert plain.stderr == f"error: {source}:1: this is a JSON array, {NOT_MRQA}\n"
    traced = _subprocess(_prepare(source, out, tokenizer_dir), debug=True)
    assert traced.returncode == 2
    assert traced.stderr.startswith("Traceback (most recent call last):")
    assert "bench/prepare/mrqa.py" in traced.stderr
    assert traced.stderr.endswith(plain.stderr)
    assert not out.exists() or not any(out.rglob("*"))
