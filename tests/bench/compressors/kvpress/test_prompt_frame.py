"""The front end hands ``kvpress`` the prompt around the context and keys compressions by it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import SimpleNamespace
from typing import Any

from bench.compressors import capabilities_of
from bench.harness.frontend import CompressionFrontEnd

CONTEXT = "Lily had a red ball. She liked to throw it high in the sky every day."


def _request(instruction: str, question: str) -> Any:
    doc = {"context": CONTEXT, "question": question, "instruction": instruction}
    text = f"{instruction} Context: {CONTEXT} Question: {question} Answer:"
    return SimpleNamespace(text=text, doc=doc, task_name="t", doc_id=0)


def _front_end(compressor: Any) -> CompressionFrontEnd:
    return CompressionFrontEnd(compressor, capabilities_of("kvpress"), compressor.target, None)


def test_one_compression_per_prefix_and_context_when_not_query_aware(
        make_compressor: Callable[[Mapping[str, Any]], Any]) -> None:
    front = _front_end(make_compressor({"press": "knorm", "rate": 0.5}))
    requests = [_request("Answer.", "What color?"), _request("Answer.", "What toy?"),
                _request("Reply.", "What color?")]
    prepared = front.prepare(requests)
    assert front.compressions == 2
    assert prepared[0].compressed is prepared[1].compressed
    assert prepared[2].compressed.extra["prompt"]["prefix"] == "Reply. Context: "


def test_query_aware_compresses_per_question_with_the_prompt_after_the_context(
        make_compressor: Callable[[Mapping[str, Any]], Any]) -> None:
    front = _front_end(make_compressor({"press": "knorm", "rate": 0.5, "query_aware": True}))
    requests = [_request("Answer.", "What color?"), _request("Answer.", "What toy?")]
    prepared = front.prepare(requests)
    assert front.compressions == 2
    compressor: Any = front.compressor
    tails = [compressor.decoder_item(p.compressed, p.decoder_prompt()).prompt_ids
             for p in prepared]
    assert all(len(tail) == 1 for tail in tails)
