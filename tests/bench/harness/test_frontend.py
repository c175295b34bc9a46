"""The front end between lm-eval requests and compressors."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from transformers import AutoTokenizer

from bench.compressors import Capabilities, CompressionRequest, Family, TargetModel
from bench.harness.compression_cache import CompressionCache
from bench.harness.frontend import CompressionFrontEnd, split_prompt
from bench.records import CompressedContext, CompressedText, CompressionStats


class CountingCompressor:
    name = "counting"
    version = "1"

    def __init__(self, question_aware: bool) -> None:
        self.question_aware = question_aware
        self.seen: list[CompressionRequest] = []

    def settings(self) -> dict[str, Any]:
        return {"question_aware": self.question_aware}

    def compress(self, requests: Sequence[CompressionRequest]) -> list[CompressedContext]:
        self.seen.extend(requests)
        return [CompressedText(f"{r.context[:5]}|{r.question}", CompressionStats(10, 2, 0.0))
                for r in requests]


def _declared(compressor: CountingCompressor) -> Capabilities:
    """Question use declared as a predicate on the settings, as a method whose options
    decide it declares it."""
    del compressor
    return Capabilities(Family.HARD, question_aware=lambda settings: settings["question_aware"])


class Request:
    task_name = "t"
    doc_id = 0

    def __init__(self, context: str, question: str) -> None:
        self.doc = {"context": context, "question": question, "instruction": "Do it."}
        self.text = f"Do it. Context: {context} Question: {question} Answer:"


@pytest.fixture(scope="module")
def target(tiny_model_dir: Path) -> TargetModel:
    return TargetModel("tiny", AutoTokenizer.from_pretrained(str(tiny_model_dir)))


def _requests() -> list[Request]:
    return [Request(c, q) for c in ("Alpha text.", "Beta text.") for q in ("Q1?", "Q2?")]


def test_context_compressed_once_unless_question_aware(target: TargetModel):
    plain = CountingCompressor(question_aware=False)
    CompressionFrontEnd(plain, _declared(plain), target, cache=None).prepare(_requests())
    assert len(plain.seen) == 2
    aware = CountingCompressor(question_aware=True)
    prepared = CompressionFrontEnd(aware, _declared(aware), target, cache=None).prepare(_requests())
    assert len(aware.seen) == 4
    assert [p.text_prompt() for p in prepared][:2] == [
        "Do it. Context: Alpha|Q1? Question: Q1? Answer:",
        "Do it. Context: Alpha|Q2? Question: Q2? Answer:"]


def test_disk_cache_serves_a_second_front_end(target: TargetModel, tmp_path: Path):
    first = CountingCompressor(question_aware=False)
    CompressionFrontEnd(first, _declared(first), target, CompressionCache(tmp_path)).prepare(
        _requests())
    second = CountingCompressor(question_aware=False)
    prepared = CompressionFrontEnd(second, _declared(second), target,
                                   CompressionCache(tmp_path)).prepare(
        _requests())
    assert second.seen == [] and all(p.cached for p in prepared)


def test_prompt_without_the_context_is_an_error():
    with pytest.raises(ValueError, match="task x, doc 3: the rendered prompt does not contain"):
        split_prompt("Question: Q?", {"context": "missing"}, "task x, doc 3")
    with pytest.raises(ValueError, match="no string field 'context'"):
        split_prompt("Question: Q?", {"text": "t"}, "task x, doc 3")
