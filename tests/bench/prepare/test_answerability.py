"""Answerability on SQuAD-normalised word boundaries, and the counts of dropped questions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from bench.metrics import normalize_answer
from bench.prepare.answerability import (
    answer_in_text,
    answer_tokens,
    contains_run,
    is_empty_answer,
    span_start,
)
from bench.prepare.qa import build_qa_rows
from bench.records import ContextSample, Question
from bench.tiny import train_tokenizer

KNOWN = "It is well known that the value was 31.8 on day 3."


def test_a_gold_inside_a_longer_word_or_number_is_not_present() -> None:
    assert not answer_in_text("no", "It is well known.")
    assert not answer_in_text("3", "the value was 31.8")
    assert answer_in_text("31.8", KNOWN) and answer_in_text("day 3", KNOWN)
    assert answer_in_text("No", "No. It is not.")


def test_matching_uses_the_squad_normalisation() -> None:
    assert answer_tokens("The Value, was") == tuple(normalize_answer("The Value, was").split())
    assert answer_in_text("VALUE WAS", KNOWN) and answer_in_text("the value", KNOWN)
    assert not answer_in_text("value day", KNOWN), "tokens must be contiguous"
    assert contains_run(("a", "b", "c"), ("b", "c")) and not contains_run(("a", "b"), ())


@pytest.mark.parametrize("answer", ["", "   ", "\n\t", ".", "the"])
def test_empty_answers_occur_nowhere(answer: str) -> None:
    assert is_empty_answer(answer)
    assert not answer_in_text(answer, KNOWN + " " + answer)
    assert span_start(answer, KNOWN) is None


def test_span_start_skips_occurrences_inside_words() -> None:
    text = "I know no one; 31.8 and 3 apples"
    assert span_start("no", text) == text.index(" no ") + 1
    assert span_start("3", text) == text.index(" 3 ") + 1
    assert span_start("kno", text) is None


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> PreTrainedTokenizerBase:
    folder: Path = train_tokenizer([KNOWN] * 4, tmp_path_factory.mktemp("tok"), vocab_size=120)
    return AutoTokenizer.from_pretrained(str(folder))


def test_prepared_rows_drop_and_count_substring_and_empty_answers(
        tokenizer: PreTrainedTokenizerBase) -> None:
    questions = (
        Question("q-no", "Is it?", ("no",)),
        Question("q-3", "Which day?", ("3",)),
        Question("q-blank", "What?", ("", "  ")),
        Question("q-ok", "Which value?", ("31.8", " ", "thirty")),
    )
    contexts = [ContextSample("c1", "It is well known that the value was 31.8.", questions, "t")]
    rows, counts = build_qa_rows(contexts, tokenizer, 1000, show_progress=False)
    assert [row["qid"] for row in rows] == ["q-ok"]
    assert rows[0]["answers"] == ["31.8", "thirty"]
    assert counts.dropped_answer_not_in_context == 2
    assert counts.dropped_answer_empty == 1
    assert counts.empty_answers_removed == 1
    assert counts.questions_kept == 1 and counts.questions_read == 4


def test_the_card_and_manifest_count_empty_answers(
        tmp_path: Path, tokenizer: PreTrainedTokenizerBase) -> None:
    from bench.prepare.cli import prepare_benchmark

    lines = [
        {"header": {"dataset": "T"}},
        {"context": KNOWN, "qas": [
            {"qid": "a", "question": "Which value?", "answers": ["31.8"]},
            {"qid": "b", "question": "What?", "answers": ["   "]},
            {"qid": "c", "question": "Is it?", "answers": ["no"]},
        ]},
    ]
    source = tmp_path / "t.jsonl"
    source.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    parquet = prepare_benchmark("squad", source, tmp_path / "out", tokenizer, 1000,
                                show_progress=False)
    counts = json.loads((parquet.parent / "manifest.json").read_text())["counts"]
    assert (counts["dropped_answer_empty"], counts["dropped_answer_not_in_context"]) == (1, 1)
    card = (parquet.parent / "README.md").read_text(encoding="utf-8")
    assert "| questions dropped: every gold answer empty | 1 |" in card
    assert "| questions dropped: no gold answer in the context (normalised words) | 1 |" in card
