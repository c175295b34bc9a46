"""Parity of ``autocompressor`` with princeton-nlp/AutoCompressors on the reference fixtures.

The fixture's ``checkpoint/`` is loaded as the harness loads a target model (a plain
transformers causal LM). Per case: the tokenizer path gives the recorded ids, the softprompt
built from the recorded ids (segments and calls as recorded) matches, the first prompt token
sits at ``next_position``, the prompt logits match, and greedy decoding gives the recorded
tokens, both from the recorded ids and through the public compressor path from the text.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import torch

from bench.compressors._api import CompressionRequest, TargetModel, build_compressor
from bench.compressors.soft.autocompressor.compressor import AutoCompressor
from bench.compressors.soft.autocompressor.summary import chunk_ids, split_segments
from bench.compressors.soft.decode import DecoderItem, greedy_generate, prepare_batch
from bench.generation import DecoderPrompt, GenerationSettings
from bench.records import CompressedEmbeddings, CompressionStats
from tests.bench.compressors.soft.reference_fixtures import (
    ReferenceFixture,
    case_ids,
    load_fixture,
    read_cases,
)

METHOD = "autocompressor"
CASES = case_ids(METHOD)


def _single_call_cases() -> list[str]:
    return [case["id"] for case in read_cases(METHOD) if len(case["compress_calls"]) == 1]


class RecordingTokenizer:
    """Delegates to a tokenizer and keeps the token lists it is asked to decode."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.decoded: list[list[int]] = []

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.inner(*args, **kwargs)

    def decode(self, ids: Any, **kwargs: Any) -> Any:
        self.decoded.append([int(i) for i in ids])
        return self.inner.decode(ids, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.fixture(scope="module")
def fixture() -> ReferenceFixture:
    return load_fixture(METHOD)


@pytest.fixture(scope="module")
def compressor(fixture: ReferenceFixture) -> AutoCompressor:
    for module in ("sentencepiece", "google.protobuf"):
        pytest.importorskip(module, reason=f"{module} is needed to read the checkpoint's "
                                           "tokenizer.model with transformers")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = fixture.path / "checkpoint"
    model = AutoModelForCausalLM.from_pretrained(str(path)).eval()  # type: ignore[no-untyped-call]
    tokenizer = RecordingTokenizer(AutoTokenizer.from_pretrained(str(path)))
    built = build_compressor(METHOD, TargetModel(str(path), tokenizer, model), {})  # type: ignore[arg-type]
    assert isinstance(built, AutoCompressor)
    return built


def chunk_texts(compressor: AutoCompressor, case: dict[str, Any]) -> list[str]:
    """The text of each recorded compress call (they join to the case's context)."""
    tokenizer = compressor.target.tokenizer
    texts = [str(tokenizer.decode(call["input_ids"], skip_special_tokens=True))
             for call in case["compress_calls"]]
    assert " ".join(texts) == case["context"]
    return texts


def prompt_for(case: dict[str, Any]) -> DecoderPrompt:
    """The case's prompt as the text after the context, behind an instruction that is unused."""
    kind = "qa" if case["kind"] == "qa" else "regeneration"
    return DecoderPrompt(kind=kind, prefix="Answer from the context. Context: ",
                         suffix=f" {case['prompt']}", question=case["question"])


def our_softprompt(compressor: AutoCompressor, case: dict[str, Any]) -> torch.Tensor:
    """The softprompt built from the recorded ids, one call after another."""
    softprompt: torch.Tensor | None = None
    for call in case["compress_calls"]:
        assert (0 if softprompt is None else softprompt.shape[0]) == call["softprompt_in"]
        segments = split_segments(call["input_ids"], call["segment_lengths"])
        softprompt = compressor.encoder.compress([segments], [softprompt])[0]
    assert softprompt is not None
    return softprompt


def recorded_item(compressor: AutoCompressor, case: dict[str, Any],
                  softprompt: torch.Tensor) -> DecoderItem:
    """Our decoder layout for the case, with the recorded prompt ids."""
    compressed = CompressedEmbeddings(softprompt, CompressionStats(0, softprompt.shape[0], 0.0))
    item = compressor.decoder_item(compressed, prompt_for(case))
    return dataclasses.replace(item, prompt_ids=tuple(case["input_ids"]))


def assert_close(ours: torch.Tensor, reference: torch.Tensor, fixture: ReferenceFixture) -> None:
    torch.testing.assert_close(ours.float(), reference.float(), atol=fixture.tensor_atol,
                               rtol=fixture.tensor_rtol)


def expected_tokens(compressor: AutoCompressor, case: dict[str, Any]) -> list[int]:
    """The recorded greedy tokens without a final EOS (generation stops before it)."""
    tokens = list(case["expected_token_ids"])
    if tokens and tokens[-1] in compressor._eos:
        tokens.pop()
    return tokens


def decode_ids(compressor: AutoCompressor, generate: Any, max_new_tokens: int) -> list[list[int]]:
    tokenizer = compressor.target.tokenizer
    assert isinstance(tokenizer, RecordingTokenizer)
    tokenizer.decoded.clear()
    generate(GenerationSettings(max_new_tokens=max_new_tokens))
    return list(tokenizer.decoded)


@pytest.mark.parametrize("case_id", CASES)
def test_tokenizer_path_gives_recorded_ids(compressor: AutoCompressor,
                                           fixture: ReferenceFixture, case_id: str) -> None:
    case = fixture.case(case_id)
    recorded = [call["input_ids"] for call in case["compress_calls"]]
    assert chunk_ids(compressor.target.tokenizer, chunk_texts(compressor, case)) == recorded
    if len(recorded) == 1 and case["compress_calls"][0]["segment_lengths"] is None:
        segments, truncated = compressor.context_segments(case["context"])
        assert segments == recorded and not truncated
    assert compressor.prompt_ids(prompt_for(case)) == case["input_ids"]


@pytest.mark.parametrize("case_id", CASES)
def test_softprompt_matches(compressor: AutoCompressor, fixture: ReferenceFixture,
                            case_id: str) -> None:
    case = fixture.case(case_id)
    reference = fixture.tensors[f"{case_id}.softprompt"]
    assert reference.shape[1] == case["softprompt_length"]
    assert_close(our_softprompt(compressor, case)[None], reference, fixture)


@pytest.mark.parametrize("case_id", CASES)
def test_next_position_and_prompt_logits_match(compressor: AutoCompressor,
                                               fixture: ReferenceFixture, case_id: str) -> None:
    case = fixture.case(case_id)
    item = recorded_item(compressor, case, our_softprompt(compressor, case))
    batch = prepare_batch(compressor.model, [item])  # type: ignore[arg-type]
    k = case["softprompt_length"]
    assert int(batch.position_ids[0, k]) == case["next_position"]
    assert int(fixture.tensors[f"{case_id}.next_position"][0]) == case["next_position"]
    with torch.no_grad():
        logits = compressor.model(inputs_embeds=batch.inputs_embeds,  # type: ignore[operator]
                                  attention_mask=batch.attention_mask,
                                  position_ids=batch.position_ids, use_cache=False).logits
    assert_close(logits[:, k:], fixture.tensors[f"{case_id}.prompt_logits"], fixture)


def test_greedy_tokens_from_recorded_ids(compressor: AutoCompressor,
                                         fixture: ReferenceFixture) -> None:
    cases = fixture.cases
    items = [recorded_item(compressor, case, our_softprompt(compressor, case)) for case in cases]
    longest = max(len(case["expected_token_ids"]) for case in cases)
    decoded = decode_ids(compressor, lambda settings: greedy_generate(
        compressor.model, compressor.target.tokenizer, items, settings,  # type: ignore[arg-type]
        compressor._eos), longest)
    for case, tokens in zip(cases, decoded, strict=True):
        assert tokens[:len(case["expected_token_ids"])] == expected_tokens(compressor, case), \
            case["id"]


@pytest.mark.parametrize("case_id", _single_call_cases())
def test_public_path_from_text(compressor: AutoCompressor, fixture: ReferenceFixture,
                               case_id: str) -> None:
    case = fixture.case(case_id)
    lengths = case["compress_calls"][0]["segment_lengths"]
    if lengths is None:
        (compressed,) = compressor.compress([CompressionRequest(case["context"],
                                                                case["question"])])
    else:
        compressed = compressor.compress_chunks([case["context"]], [lengths])
    assert isinstance(compressed, CompressedEmbeddings)
    assert compressed.stats.compressed_tokens == case["softprompt_length"]
    assert_close(compressed.embeddings[None], fixture.tensors[f"{case_id}.softprompt"], fixture)
    decoded = decode_ids(compressor, lambda settings: compressor.generate(
        [(compressed, prompt_for(case))], settings), len(case["expected_token_ids"]))
    assert decoded == [expected_tokens(compressor, case)]


def test_public_path_batches_contexts_and_chunks(compressor: AutoCompressor,
                                                 fixture: ReferenceFixture) -> None:
    """All one-segment contexts in one left-padded batch, and chunked calls from text."""
    plain = [case for case in fixture.cases if len(case["compress_calls"]) == 1
             and case["compress_calls"][0]["segment_lengths"] is None]
    chunked = [case for case in fixture.cases if len(case["compress_calls"]) > 1]
    assert len(plain) > 1 and chunked, "the fixture lacks batched or chunked cases"
    records = compressor.compress([CompressionRequest(case["context"]) for case in plain])
    records += [compressor.compress_chunks(
        chunk_texts(compressor, case),
        [call["segment_lengths"] for call in case["compress_calls"]]) for case in chunked]
    cases = plain + chunked
    for case, record in zip(cases, records, strict=True):
        assert isinstance(record, CompressedEmbeddings)
        assert_close(record.embeddings[None], fixture.tensors[f"{case['id']}.softprompt"],
                     fixture)
    longest = max(len(case["expected_token_ids"]) for case in cases)
    decoded = decode_ids(compressor, lambda settings: compressor.generate(
        [(record, prompt_for(case)) for record, case in zip(records, cases, strict=True)],
        settings), longest)
    for case, tokens in zip(cases, decoded, strict=True):
        assert tokens[:len(case["expected_token_ids"])] == expected_tokens(compressor, case), \
            case["id"]
