"""Building the rows of a prepared QA benchmark from MRQA-style contexts."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from tqdm import tqdm
from transformers import PreTrainedTokenizerBase

from bench.prepare.answerability import answer_tokens, contains_run
from bench.prepare.cut import cut_to_tokens
from bench.records import ContextSample
from bench.substrate.errors import InputError

__all__ = ["QACounts", "build_qa_rows", "sample_key", "sample_rows"]


@dataclass
class QACounts:
    """What happened to the source's questions, for the card and the manifest."""

    contexts_read: int = 0
    questions_read: int = 0
    contexts_truncated: int = 0
    dropped_answer_cut_off: int = 0
    dropped_answer_not_in_context: int = 0
    dropped_answer_empty: int = 0
    empty_answers_removed: int = 0
    questions_kept: int = 0
    questions_selected: int = 0
    contexts_selected: int = 0

    def as_dict(self) -> dict[str, int]:
        """Plain dict, field order kept."""
        return asdict(self)


def sample_key(seed: int, key: str) -> str:
    """Platform-independent sort key of an item for seeded sampling: SHA-256 of seed and key."""
    return hashlib.sha256(f"{seed}\x00{key}".encode()).hexdigest()


def _check_unique(contexts: Sequence[ContextSample]) -> None:
    seen: dict[str, Any] = {}
    for sample in contexts:
        for question in sample.questions:
            where = sample.metadata.get("line", sample.context_id)
            if question.qid in seen:
                raise InputError(
                    f"duplicate qid {question.qid!r}: contexts at line/row {seen[question.qid]} "
                    f"and {where}"
                )
            seen[question.qid] = where


def _usable_answers(answers: Sequence[str], counts: QACounts) -> list[tuple[str, ...]]:
    """SQuAD tokens of the non-empty answers; empty ones are counted and left out."""
    tokens = [answer_tokens(answer) for answer in answers]
    usable = [t for t in tokens if t]
    if usable:
        counts.empty_answers_removed += len(tokens) - len(usable)
    return usable


def build_qa_rows(
    contexts: Iterable[ContextSample],
    tokenizer: PreTrainedTokenizerBase,
    max_context_tokens: int,
    show_progress: bool = True,
) -> tuple[list[dict[str, Any]], QACounts]:
    """Cut every context to ``max_context_tokens`` and keep the questions still answerable.

    A question is kept when at least one gold answer occurs in the cut context on
    SQuAD-normalised word boundaries (:mod:`bench.prepare.answerability`: "no" is not in
    "known"). Gold answers without a SQuAD token (empty, whitespace, punctuation) are left
    out and counted; a question with no other answer is dropped. Dropped questions are
    counted apart: no usable answer, the answer was in the full context but cut off, or it
    was never in the context at all.
    """
    contexts = list(contexts)
    _check_unique(contexts)
    counts = QACounts(contexts_read=len(contexts))
    rows: list[dict[str, Any]] = []
    for sample in tqdm(contexts, desc="cutting contexts", unit="ctx", disable=not show_progress):
        counts.questions_read += len(sample.questions)
        cut = cut_to_tokens(tokenizer, sample.context, max_context_tokens)
        assert cut is not None
        text, n_tokens = cut
        counts.contexts_truncated += text != sample.context
        cut_tokens = answer_tokens(text)
        for question in sample.questions:
            golds = _usable_answers(question.answers, counts)
            if not golds:
                counts.dropped_answer_empty += 1
                continue
            if not any(contains_run(cut_tokens, gold) for gold in golds):
                full_tokens = answer_tokens(sample.context)
                if any(contains_run(full_tokens, gold) for gold in golds):
                    counts.dropped_answer_cut_off += 1
                else:
                    counts.dropped_answer_not_in_context += 1
                continue
            rows.append(
                {
                    "qid": question.qid,
                    "context_id": sample.context_id,
                    "context": text,
                    "question": question.question,
                    "answers": [a for a in question.answers if answer_tokens(a)],
                    "source": sample.source,
                    "context_tokens": n_tokens,
                }
            )
    counts.questions_kept = len(rows)
    return rows, counts


def sample_rows(
    rows: Sequence[dict[str, Any]], limit: int | None, seed: int, key: str = "qid"
) -> list[dict[str, Any]]:
    """Seeded sample of ``limit`` rows, returned in their original order.

    Rows are ranked by :func:`sample_key` of ``(seed, row[key])`` and the first ``limit`` are
    kept: the same on every platform, and a larger limit keeps every row a smaller one kept.
    """
    if limit is None or limit >= len(rows):
        return list(rows)
    if limit < 0:
        raise InputError(f"limit must be >= 0, got {limit}")
    ranked = sorted(range(len(rows)), key=lambda i: sample_key(seed, str(rows[i][key])))
    chosen = sorted(ranked[:limit])
    return [rows[i] for i in chosen]
