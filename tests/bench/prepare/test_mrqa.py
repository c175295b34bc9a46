"""bench.prepare.mrqa: streaming MRQA reader, markup cleaning, errors naming file, line,
field."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from bench.prepare.hf_mrqa import contexts_from_hf_rows
from bench.prepare.mrqa import MRQAFormatError, clean_mrqa_markup, read_mrqa, read_mrqa_header

SHARED = Path(__file__).resolve().parents[3] / ".." / "shared"
SQUAD_DEV = SHARED / "data" / "mrqa_dev" / "SQuAD.jsonl.gz"

HEADER = {"header": {"dataset": "Toy", "split": "dev"}}
GOOD: dict[str, Any] = {
    "id": "c1",
    "context": "[PAR] [TLE] Velmora [SEP] Velmora is a town. [PAR] It lies by a lake.",
    "qas": [
        {
            "qid": "q1",
            "question": "What is Velmora?",
            "answers": ["a town", "a town", "town"],
            "detected_answers": [],
        },
        {"qid": "q2", "question": "Where?", "answers": ["by a lake"]},
    ],
}


def write_lines(path: Path, lines: list[object], gz: bool = False) -> Path:
    text = "".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines)
    if gz:
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("gz", [False, True])
def test_reads_contexts_and_questions(tmp_path, gz):
    no_id = {
        "context": "Plain text.",
        "qas": [{"qid": "q3", "question": "?", "answers": ["Plain"]}],
        "benchmark": "squad",
    }
    path = write_lines(
        tmp_path / ("toy.jsonl" + (".gz" if gz else "")), [HEADER, GOOD, "", no_id], gz
    )
    samples = list(read_mrqa(path))
    assert samples[0].context_id == "c1"
    assert samples[1].context_id.startswith("ctx-") and len(samples[1].context_id) == 20
    assert samples[0].context == GOOD["context"]  # faithful by default
    assert samples[0].source == "Toy"
    assert samples[0].questions[0].answers == ("a town", "town")  # de-duplicated, ordered
    assert samples[0].metadata == {"line": 2}
    assert samples[1].metadata == {"line": 4, "benchmark": "squad"}  # blank line 3 skipped
    assert read_mrqa_header(path) == HEADER["header"]


def test_clean_markup_option():
    cleaned = clean_mrqa_markup(GOOD["context"])
    assert cleaned == "Velmora\nVelmora is a town.\n\nIt lies by a lake."
    assert clean_mrqa_markup("No markup  here \n") == "No markup  here \n"


def test_clean_markup_in_reader(tmp_path):
    path = write_lines(tmp_path / "toy.jsonl", [HEADER, GOOD])
    (sample,) = read_mrqa(path, clean_markup=True)
    assert "[" not in sample.context and "Velmora is a town." in sample.context


@pytest.mark.parametrize(
    ("line", "field", "problem"),
    [
        ("{not json", "<line>", "invalid JSON"),
        ("[1, 2]", "<line>", "expected a JSON object"),
        ({"qas": []}, "context", "missing"),
        ({"context": 3, "qas": []}, "context", "expected str, got int"),
        ({"context": "c", "qas": {}}, "qas", "expected list, got dict"),
        ({"context": "c", "qas": ["q"]}, "qas[0]", "expected object"),
        ({"context": "c", "qas": [{"question": "?", "answers": ["a"]}]}, "qas[0].qid", "missing"),
        (
            {"context": "c", "qas": [{"qid": "q", "question": "?", "answers": "a"}]},
            "qas[0].answers",
            "expected list, got str",
        ),
        (
            {"context": "c", "qas": [{"qid": "q", "question": "?", "answers": []}]},
            "qas[0].answers",
            "empty list",
        ),
        (
            {
                "context": "c",
                "qas": [GOOD["qas"][0], {"qid": "q", "question": "?", "answers": [None]}],
            },
            "qas[1].answers[0]",
            "expected str, got null",
        ),
        ({"context": "c", "qas": [], "id": 7}, "id", "expected str, got int"),
        (
            {"context": "c", "qas": [], "benchmark": "b\ud800"},
            "benchmark",
            "a lone surrogate \\ud800 at character 1",
        ),
    ],
)
def test_errors_name_file_line_and_field(tmp_path, line, field, problem):
    path = write_lines(tmp_path / "bad.jsonl", [HEADER, GOOD, line])
    with pytest.raises(MRQAFormatError) as info:
        list(read_mrqa(path))
    message = str(info.value)
    assert message.startswith(f"{path}:3: field {field!r}: ")
    assert problem in message
    assert (info.value.line, info.value.field) == (3, field)


def test_header_errors(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(MRQAFormatError, match=r"empty\.jsonl:1: field 'header': file is empty"):
        list(read_mrqa(empty))
    no_header = write_lines(tmp_path / "nohead.jsonl", [GOOD])
    with pytest.raises(MRQAFormatError, match=r"nohead\.jsonl:1: field 'header': missing"):
        list(read_mrqa(no_header))


def test_a_lone_surrogate_in_the_header_names_the_field(tmp_path):
    path = write_lines(tmp_path / "head.jsonl", [{"header": {"dataset": "Toy\udfff"}}, GOOD])
    with pytest.raises(MRQAFormatError) as info:
        list(read_mrqa(path))
    assert str(info.value) == (f"{path}:1: field 'header.dataset': a lone surrogate \\udfff at "
                               "character 3; text must be valid Unicode: fix or remove that escape")


def test_truncated_gzip_names_the_line(tmp_path):
    path = write_lines(tmp_path / "cut.jsonl.gz", [HEADER] + [GOOD] * 200, gz=True)
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(MRQAFormatError, match=r"cut\.jsonl\.gz:\d+: field '<line>'"):
        list(read_mrqa(path))


def test_hf_rows_grouped_by_context():
    rows = [
        {"subset": "SQuAD", "context": "A b.", "qid": "1", "question": "?", "answers": ["b", "b"]},
        {"subset": "SQuAD", "context": "C d.", "qid": "2", "question": "?", "answers": ["d"]},
        {"subset": "SQuAD", "context": "A b.", "qid": "3", "question": "!", "answers": ["A"]},
    ]
    samples = list(contexts_from_hf_rows(rows, "hf:mrqa[validation]"))
    assert [[q.qid for q in s.questions] for s in samples] == [["1", "3"], ["2"]]
    assert samples[0].questions[0].answers == ("b",)
    assert samples[0].source == "SQuAD" and samples[1].metadata == {"line": 2}
    bad = [*rows, {"subset": "SQuAD", "context": "E.", "question": "?", "answers": ["E"]}]
    with pytest.raises(MRQAFormatError, match=r"hf:mrqa\[validation\]:4: field 'qid': missing"):
        list(contexts_from_hf_rows(bad, "hf:mrqa[validation]"))


@pytest.mark.skipif(not SQUAD_DEV.is_file(), reason=f"MRQA SQuAD dev file not found at {SQUAD_DEV}")
def test_real_squad_dev_file():
    samples = list(read_mrqa(SQUAD_DEV))
    assert len(samples) == 2067
    assert sum(len(s.questions) for s in samples) == 10507
    assert {s.source for s in samples} == {"SQuAD"}
    first = samples[0].questions[0]
    assert first.question == "Which NFL team represented the AFC at Super Bowl 50?"
    assert first.answers == ("Denver Broncos",)
