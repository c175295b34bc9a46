"""``llmzip``: exact round trips, code length against sum(-log2 p), and the lossless check."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench.compressors import CompressionRequest, TargetModel, build_compressor, capabilities_of
from bench.compressors._llmzip_codec import (
    FLUSH_BITS,
    SYMBOL_OVERHEAD_BITS,
    LlmzipCode,
    LlmzipCodec,
    count_bits,
)
from bench.compressors._llmzip_edits import CorruptCodeError, apply_text_edits, text_edits
from bench.compressors._llmzip_model import SequentialPredictor, parallel_probabilities
from bench.compressors.llmzip import Llmzip, LosslessCheckError
from bench.demo_data import demo_qa_path, demo_regeneration_records
from bench.harness.answering import open_cache
from bench.records import CompressedText

from .conftest import SHARED, SQUAD_DEV, read_squad_contexts

STORIES = SHARED / "data" / "stories260K_hf"
SQUAD_SAMPLE = 2
SQUAD_WINDOW = 128


def demo_texts() -> list[str]:
    """Every text of the bundled demo data: regeneration paragraphs and QA contexts."""
    texts = [record["text"] for record in demo_regeneration_records()]
    for line in demo_qa_path().read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if "context" in record:
            texts.append(record["context"])
    return texts


def load_target(path: Path) -> TargetModel:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(path)).eval()  # type: ignore[no-untyped-call]
    return TargetModel(path.name, AutoTokenizer.from_pretrained(str(path)), model)


@pytest.fixture(scope="module")
def stories() -> TargetModel:
    if not STORIES.is_dir():
        pytest.skip(f"real tiny model not found at {STORIES} (developer checkouts only)")
    return load_target(STORIES)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> TargetModel:
    """A one-layer seeded Llama whose tokenizer is trained on the demo texts with a large
    vocabulary: few tokens per text, so that coding every demo text twice stays fast."""
    from bench.demo import _demo_texts
    from bench.tiny import build_tiny_model

    folder = tmp_path_factory.mktemp("llmzip-tiny")
    return load_target(build_tiny_model(_demo_texts(), folder, seed=0, num_layers=1,
                                        vocab_size=4096))


def ideal_bits(target: TargetModel, text: str) -> tuple[int, float]:
    """(tokens, sum of -log2 p) of ``text`` from one float64 log-softmax over the whole text,
    computed here without the codec."""
    import torch

    ids = target.tokenizer(text, add_special_tokens=False)["input_ids"]
    start = target.tokenizer.bos_token_id
    if start is None:
        start = target.tokenizer.eos_token_id
    assert target.model is not None
    with torch.no_grad():
        logits = target.model(torch.tensor([[start, *ids[:-1]]])).logits[0].double()
    log_p = torch.log_softmax(logits, dim=-1)[torch.arange(len(ids)), torch.tensor(ids)]
    return len(ids), float(-log_p.sum()) / math.log(2)


def test_every_demo_text_round_trips_exactly(tiny: TargetModel) -> None:
    texts = demo_texts()
    compressor = build_compressor("llmzip", tiny, {})
    results = compressor.compress([CompressionRequest(text) for text in texts])
    assert len(results) == len(texts)
    for text, result in zip(texts, results, strict=True):
        assert isinstance(result, CompressedText)
        assert result.text.encode("utf-8") == text.encode("utf-8")
        assert result.stats.compressed_bits == 32 * result.extra["code_words"]
        assert result.stats.original_tokens == tiny.count_tokens(text)
        assert result.stats.compressed_tokens == result.stats.original_tokens


@pytest.mark.slow
def test_squad_contexts_round_trip_across_window_restarts(stories: TargetModel) -> None:
    if not SQUAD_DEV.is_file():
        pytest.skip(f"MRQA SQuAD dev file not found at {SQUAD_DEV}")
    assert stories.model is not None
    codec = LlmzipCodec(stories.model, stories.tokenizer, window=SQUAD_WINDOW)
    for context, _ in read_squad_contexts(SQUAD_SAMPLE, skip=40):
        code = codec.encode(context)
        assert code.n_tokens > SQUAD_WINDOW
        assert codec.decode(code).encode("utf-8") == context.encode("utf-8")


def test_code_length_is_sum_of_minus_log2_p_within_the_coders_overhead(
        stories: TargetModel) -> None:
    assert stories.model is not None
    codec = LlmzipCodec(stories.model, stories.tokenizer)
    for text in demo_texts()[:4]:
        code = codec.encode(text)
        assert code.edit_bytes == 0
        n_tokens, information = ideal_bits(stories, text)
        ideal = information + count_bits(n_tokens) + 1.0
        slack = n_tokens * SYMBOL_OVERHEAD_BITS
        assert ideal - slack <= code.bits <= ideal + FLUSH_BITS + slack
        assert codec.code_bits(text) == code.bits


def test_one_pass_probabilities_are_the_decoders_up_to_rounding(stories: TargetModel) -> None:
    assert stories.model is not None
    window = 16
    ids = stories.tokenizer(demo_texts()[1], add_special_tokens=False)["input_ids"][:60]
    predictor = SequentialPredictor(stories.model, stories.tokenizer.bos_token_id, window)
    stepped = np.stack([predictor.first()] + [predictor.after(token) for token in ids[:-1]])
    blocks = parallel_probabilities(stories.model, stories.tokenizer.bos_token_id, window, ids)
    together = np.concatenate(list(blocks))
    assert together.shape == stepped.shape == (len(ids), stories.model.config.vocab_size)
    assert np.abs(together - stepped).max() < 1e-5


def test_a_tokenizer_that_does_not_round_trip_is_repaired_by_coded_edits(
        stories: TargetModel) -> None:
    text = "  Lily  ran.\tShe saw\r\na cat. "
    ids = stories.tokenizer(text, add_special_tokens=False)["input_ids"]
    assert stories.tokenizer.decode(ids, skip_special_tokens=False) != text
    (result,) = build_compressor("llmzip", stories, {}).compress([CompressionRequest(text)])
    assert isinstance(result, CompressedText)
    assert result.text == text
    assert result.extra["tokenizer_round_trip"] is False and result.extra["edit_bytes"] > 0


@pytest.mark.parametrize(("decoded", "text"), [
    ("a <unk> b", "a \u2603 b"),
    ("x  y  z", "x y z"),
    ("Lily ran", "  Lily ran.\r\n"),
    ("same", "same"),
    ("", "\ud800 lone surrogate"),
])
def test_edits_turn_any_decoded_string_into_the_text(decoded: str, text: str) -> None:
    payload = text_edits(decoded, text)
    assert (payload == b"") == (decoded == text)
    assert apply_text_edits(decoded, payload) == text


def test_the_decoder_reads_the_code(stories: TargetModel) -> None:
    """A changed bit gives another text or the codec's own error, never a codec exception."""
    assert stories.model is not None
    codec = LlmzipCodec(stories.model, stories.tokenizer)
    text = demo_texts()[0]
    code = codec.encode(text)
    assert codec.decode(code) == text
    outcomes = []
    for bit in range(0, 32 * len(code.words), 32 * len(code.words) // 6 + 1):
        words = code.words.copy()
        words[bit // 32] ^= np.uint32(1 << (bit % 32))
        try:
            decoded = codec.decode(LlmzipCode(words, code.n_tokens, code.edit_bytes))
        except CorruptCodeError:
            outcomes.append("refused")
        else:
            assert decoded != text, f"bit {bit}"
            outcomes.append("other text")
    assert "refused" in outcomes


@pytest.mark.parametrize("payload", [
    b"\xff\xfe\x80", b"not json", b'{"start": 0}', b'[[0, 1]]', b'[[true, 1, "x"]]',
    b'[[0, 1, 7]]', b'[[3, 2, "x"]]', b'[[0, 99, "x"]]', b'[[2, 3, "x"], [0, 1, "y"]]',
])
def test_edits_that_do_not_fit_the_decoded_text_are_refused(payload: bytes) -> None:
    with pytest.raises(CorruptCodeError):
        apply_text_edits("decoded", payload)


def test_a_code_whose_counts_differ_from_the_record_is_refused(stories: TargetModel) -> None:
    codec = LlmzipCodec(stories.model, stories.tokenizer)
    code = codec.encode("Lily ran to the park.")
    with pytest.raises(CorruptCodeError, match="tokens where"):
        codec.decode(LlmzipCode(code.words, code.n_tokens + 1, code.edit_bytes))
    # The range decoder holds two words of state: two more words are left unread.
    padded = np.append(code.words, np.array([7, 7], dtype=np.uint32))
    with pytest.raises(CorruptCodeError, match="left over"):
        codec.decode(LlmzipCode(padded, code.n_tokens, code.edit_bytes))


def test_a_code_that_does_not_decode_fails_the_compression_naming_the_context(
        tiny: TargetModel, monkeypatch: pytest.MonkeyPatch) -> None:
    compressor = build_compressor("llmzip", tiny, {})
    assert isinstance(compressor, Llmzip)

    def corrupt(code: Any) -> str:
        raise CorruptCodeError("the code has words left over after its last symbol")

    monkeypatch.setattr(compressor.codec, "decode", corrupt)
    with pytest.raises(LosslessCheckError, match=r"context 'Lily ran\.' \(9 characters\) "
                                                 r"does not decode \(the code has words left"):
        compressor.compress([CompressionRequest("Lily ran.")])


def test_a_decoded_text_that_differs_fails_the_compression(
        tiny: TargetModel, monkeypatch: pytest.MonkeyPatch) -> None:
    compressor = build_compressor("llmzip", tiny, {})
    assert isinstance(compressor, Llmzip)

    def wrong(code: Any) -> str:
        return "something else"

    monkeypatch.setattr(compressor.codec, "decode", wrong)
    with pytest.raises(LosslessCheckError, match="differs from the context"):
        compressor.compress([CompressionRequest(demo_texts()[0])])


def test_settings_window_and_no_cache(stories: TargetModel) -> None:
    compressor = build_compressor("llmzip", stories, {"window": 64})
    assert compressor.settings() == {"window": 64}
    assert build_compressor("llmzip", stories, {}).settings() == {
        "window": stories.model.config.max_position_embeddings}  # type: ignore[union-attr]
    assert open_cache("default", capabilities_of("llmzip")) is None
    (result,) = compressor.compress([CompressionRequest("Lily ran.")])
    assert result.extra["coder"].startswith("constriction")
    with pytest.raises(ValueError, match="window"):
        build_compressor("llmzip", stories, {"window": 100000})
    with pytest.raises(ValueError, match="neural target model"):
        build_compressor("llmzip", TargetModel("counting", stories.tokenizer), {})
