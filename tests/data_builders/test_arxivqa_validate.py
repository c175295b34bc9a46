"""ArxivQA validation: answers are found on word boundaries, empty answers are counted."""

from __future__ import annotations

from collections import Counter

import pytest

from data_builders.arxivqa.validate import validate

CONTEXT = "It is known that accuracy rose to 31.8 points after 3 epochs, and no drop followed."


def _pair(answer: str, question: str = "What happened?") -> dict[str, str]:
    return {"question": question, "answer": answer}


def test_an_answer_inside_a_word_or_number_is_not_in_the_context() -> None:
    rejected: Counter[str] = Counter()
    kept = validate([_pair("kno"), _pair("1.8"), _pair("31")], CONTEXT, rejected)
    assert kept == [] and rejected == Counter({"answer_not_in_context": 3})


def test_the_span_is_the_first_occurrence_on_word_boundaries() -> None:
    rejected: Counter[str] = Counter()
    kept = validate([_pair("no", "Was there a drop?"), _pair("3", "After how many epochs?")],
                    CONTEXT, rejected)
    assert [(p.answer, p.start) for p in kept] == [
        ("no", CONTEXT.index(" no ") + 1), ("3", CONTEXT.index(" 3 ") + 1)]
    assert all(CONTEXT[p.start : p.end] == p.answer for p in kept) and not rejected


@pytest.mark.parametrize("answer", ["", "   ", "\t\n", "...", "the"])
def test_empty_answers_are_rejected_and_counted(answer: str) -> None:
    rejected: Counter[str] = Counter()
    assert validate([_pair(answer)], CONTEXT + " the ...", rejected) == []
    assert rejected == Counter({"empty_answer": 1})


def test_answer_in_question_is_judged_on_words() -> None:
    rejected: Counter[str] = Counter()
    pairs = [_pair("known", "Is this unknown?"), _pair("31.8 points", "Were 31.8 points reached?")]
    kept = validate(pairs, CONTEXT, rejected)
    assert [p.answer for p in kept] == ["known"]
    assert rejected == Counter({"answer_in_question": 1})
