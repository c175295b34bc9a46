"""``bits_per_byte``: each family's compressed bits over the UTF-8 bytes of the context the
compressor was given, on hand-computed cases, as the harness records them per sample."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from bench.compressors import (
    Capabilities,
    CompressionRequest,
    Family,
    TargetModel,
    build_compressor,
)
from bench.compressors._llmzip_codec import LlmzipCodec
from bench.generation import GenerationOutput
from bench.harness.answering import RunAccount
from bench.harness.frontend import CompressionFrontEnd, PreparedRequest, split_prompt
from bench.records import (
    CompressedContext,
    CompressedEmbeddings,
    CompressedKV,
    CompressedText,
    CompressionStats,
)
from bench.results_record import SampleRecord

CONTEXT = "Grüße aus Zürich: 5 €."
CONTEXT_BYTES = 27  # 22 characters: ü and ß take two bytes each in UTF-8, € three
KEPT = "Zürich: 5 €."
TASK = "compressed_squad"


class Request:
    task_name = TASK
    doc_id = 0

    def __init__(self, context: str) -> None:
        self.doc = {"context": context, "question": "Where?", "instruction": "Answer."}
        self.text = f"Answer. Context: {context} Question: Where? Answer:"


@pytest.fixture(scope="module")
def neural(tiny_model_dir: Path) -> TargetModel:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir)).eval()  # type: ignore[no-untyped-call]
    return TargetModel("tiny", AutoTokenizer.from_pretrained(str(tiny_model_dir)), model)


def filed(target: TargetModel, compressed: CompressedContext,
          cut_to: int | None = None) -> SampleRecord:
    """The record the harness files for one answer to a question on :data:`CONTEXT`
    (``cut_to``: its first characters, as when it is cut to fit the model window)."""
    frontend = CompressionFrontEnd(build_compressor("none", target, {}),
                                   Capabilities(Family.BASELINE), target, cache=None)
    account = RunAccount(frontend, None)
    request = Request(CONTEXT)
    parts = split_prompt(request.text, request.doc, "test")
    if cut_to is not None:
        parts = replace(parts, context=parts.context[:cut_to])
    prepared = PreparedRequest(request.doc, parts, compressed, False, 0)
    account.file(request, prepared, GenerationOutput("Zürich", 2, 0.1, 0.05), request.text)
    (record,) = account.per_task[TASK]
    return record


def _stats(compressed_tokens: int) -> CompressionStats:
    return CompressionStats(9, compressed_tokens, 0.0)


def test_soft_embeddings_cost_vectors_times_hidden_times_dtype_bits(neural: TargetModel) -> None:
    vectors = CompressedEmbeddings(torch.zeros(3, 64, dtype=torch.bfloat16), _stats(3))
    record = filed(neural, vectors)
    assert record.original_bytes == CONTEXT_BYTES
    assert record.metrics()["bits_per_byte"] == (3 * 64 * 16) / 27


def test_soft_kv_costs_layers_times_2_times_heads_dim_and_entries(neural: TargetModel) -> None:
    layers, kv_heads, entries, head_dim = 3, 2, 5, 4
    keys = tuple(torch.zeros(kv_heads, entries, head_dim, dtype=torch.float16)
                 for _ in range(layers))
    cache = CompressedKV(keys, keys, _stats(entries), entries)
    assert filed(neural, cache).metrics()["bits_per_byte"] == (3 * 2 * 2 * 4 * 5 * 16) / 27


def test_a_press_costs_its_kept_entries_and_which_were_kept(neural: TargetModel) -> None:
    from bench.compressors.kvpress.bits import pressed_bits
    from bench.compressors.kvpress.prefill import PressedCache

    layers, kv_heads, head_dim, head, pressed, kept = 2, 2, 4, 3, 7, 3
    keys = tuple(torch.zeros(kv_heads, head + kept, head_dim, dtype=torch.float16)
                 for _ in range(layers))
    cache = PressedCache(keys, keys, head_tokens=head, pressed_tokens=pressed)
    stats = CompressionStats(pressed, kept, 0.0, compressed_bits=float(pressed_bits(cache)))
    record = filed(neural, CompressedKV(keys, keys, stats, head + pressed))
    entries = 2 * 2 * 2 * 3 * 4 * 16  # layers x (keys, values) x heads x kept x dim x 16 bits
    which = 2 * 2 * 6  # layers x heads x ceil(log2 C(7, 3)), C(7, 3) = 35
    assert record.metrics()["bits_per_byte"] == (entries + which) / 27


def test_hard_costs_the_llmzip_code_of_the_kept_text(neural: TargetModel) -> None:
    codec = LlmzipCodec(neural.model, neural.tokenizer)
    code = codec.encode(KEPT)
    assert codec.decode(code) == KEPT
    kept = CompressedText(KEPT, _stats(neural.count_tokens(KEPT)))
    assert filed(neural, kept).metrics()["bits_per_byte"] == 32 * len(code.words) / 27


def test_an_empty_kept_text_costs_one_word(neural: TargetModel) -> None:
    # its code holds a token count of 0 (log2 33 bits) and the no-edits bit: one 32-bit word
    nothing = CompressedText("", _stats(0))
    assert filed(neural, nothing).metrics()["bits_per_byte"] == 32 / 27


def test_lossless_costs_its_code(neural: TargetModel) -> None:
    llmzip = build_compressor("llmzip", neural, {})
    (coded,) = llmzip.compress([CompressionRequest(CONTEXT)])
    words = coded.extra["code_words"]
    assert filed(neural, coded).metrics()["bits_per_byte"] == 32 * words / 27


def test_bytes_are_those_of_the_context_the_compressor_was_given(neural: TargetModel) -> None:
    vectors = CompressedEmbeddings(torch.zeros(1, 8, dtype=torch.float32), _stats(1))
    record = filed(neural, vectors, cut_to=10)  # "Grüße aus ": 12 bytes
    assert record.original_bytes == 12
    assert record.metrics()["bits_per_byte"] == 8 * 32 / 12


def test_unknown_bits_or_no_bytes_give_no_bits_per_byte(tiny_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    reader = TargetModel("reader", AutoTokenizer.from_pretrained(str(tiny_model_dir)))
    record = filed(reader, CompressedText(KEPT, _stats(4)))
    metrics = record.metrics()
    assert metrics["original_bytes"] == CONTEXT_BYTES
    assert "compressed_bits" not in metrics and "bits_per_byte" not in metrics
    empty = SampleRecord(1.0, 0, 0, 0.0, 0.0, 0.0, 1, 1.0, 1.0, compressed_bits=32.0,
                         original_bytes=0)
    assert "bits_per_byte" not in empty.metrics()


def test_the_run_summary_pools_bits_over_bytes(neural: TargetModel) -> None:
    frontend = CompressionFrontEnd(build_compressor("none", neural, {}),
                                   Capabilities(Family.BASELINE), neural, cache=None)
    account = RunAccount(frontend, None)
    for context, rows in ((CONTEXT, 2), ("abc", 1)):
        request = Request(context)
        parts = split_prompt(request.text, request.doc, "test")
        vectors = CompressedEmbeddings(torch.zeros(rows, 8, dtype=torch.float32), _stats(rows))
        account.file(request, PreparedRequest(request.doc, parts, vectors, False, 0),
                     GenerationOutput("x", 1, 0.1, 0.05), request.text)
    summary = account.run_info(frontend.compressor, "tiny").per_task[TASK]
    assert summary["bits_per_original_byte"] == (2 * 8 * 32 + 8 * 32) / (27 + 3)
