"""Which prompt tokens are kept whole, pressed and decoded, in the harness's prompt layout."""

from __future__ import annotations

from typing import Any

import pytest

from bench.compressors.kvpress.layout import prompt_segments, tail_after
from tests.bench.compressors.soft.reference_fixtures import require_stories_dir

PREFIX = "Please finish the extractive question answering task. Just output the answer. Context: "
CONTEXT = "Lily had a red ball. She liked to throw it high in the sky."
SUFFIX = " Question: What color was the ball? Answer:"


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(require_stories_dir()))


def _text(tokenizer: Any, ids: tuple[int, ...]) -> str:
    return str(tokenizer.decode(list(ids), skip_special_tokens=True)).strip()


def test_the_parts_are_the_backend_tokens_of_the_whole_prompt(tokenizer: Any) -> None:
    for query_aware in (False, True):
        parts = prompt_segments(tokenizer, PREFIX, CONTEXT, SUFFIX, query_aware)
        whole = tokenizer(PREFIX + CONTEXT + SUFFIX)["input_ids"]
        assert [*parts.head, *parts.pressed, *parts.tail] == whole


def test_only_the_context_is_pressed_when_not_query_aware(tokenizer: Any) -> None:
    parts = prompt_segments(tokenizer, PREFIX, CONTEXT, SUFFIX, query_aware=False)
    assert parts.head[0] == tokenizer.bos_token_id
    assert _text(tokenizer, parts.head) == PREFIX.strip()
    assert _text(tokenizer, parts.pressed) == CONTEXT
    assert _text(tokenizer, parts.tail) == SUFFIX.strip()


def test_query_aware_presses_the_question_and_decodes_from_the_last_token(
        tokenizer: Any) -> None:
    plain = prompt_segments(tokenizer, PREFIX, CONTEXT, SUFFIX, query_aware=False)
    aware = prompt_segments(tokenizer, PREFIX, CONTEXT, SUFFIX, query_aware=True)
    assert aware.head == plain.head
    assert aware.pressed == plain.pressed + plain.tail[:-1]
    assert aware.tail == plain.tail[-1:]
    assert "What color was the ball?" in _text(tokenizer, aware.pressed)


def test_a_token_across_the_prefix_border_belongs_to_the_context(tokenizer: Any) -> None:
    """``Context: `` ends with a space that the context's first token carries (``▁Lily``)."""
    parts = prompt_segments(tokenizer, PREFIX, CONTEXT, SUFFIX, query_aware=False)
    alone = tokenizer(PREFIX)["input_ids"]
    assert len(parts.head) < len(alone)
    assert tokenizer.convert_ids_to_tokens(parts.pressed[0]).endswith("Lily")


def test_the_tail_is_read_from_the_whole_prompt(tokenizer: Any) -> None:
    parts = prompt_segments(tokenizer, PREFIX, CONTEXT, SUFFIX, query_aware=False)
    assert tail_after(tokenizer, PREFIX + CONTEXT, SUFFIX) == parts.tail


def test_a_prompt_without_text_after_the_context_cannot_be_query_aware(tokenizer: Any) -> None:
    with pytest.raises(ValueError, match="query_aware"):
        prompt_segments(tokenizer, PREFIX, CONTEXT, "", query_aware=True)
