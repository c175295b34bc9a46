"""Call accounting of the served models: usage shares, Retry-After, tokenizer settings."""

from __future__ import annotations

import email.utils
import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest

from bench.lmeval import api_calls
from bench.lmeval.api_tokenizers import (
    TiktokenTokenizer,
    load_tiktoken_encoding,
    parse_tiktoken_ranks,
    parse_tokenizer_spec,
)


def _response(choices: int, prompt: int, completion: int) -> dict[str, object]:
    return {"choices": [{"index": i, "text": "x"} for i in range(choices)],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion}}


def test_a_batched_call_shares_its_usage_equally_among_its_answers():
    api_calls.start_call_clock()
    cost = api_calls.cost_of_response(_response(4, 1000, 30))
    assert cost.usage is not None
    assert (cost.usage.prompt_tokens, cost.usage.completion_tokens) == (250.0, 7.5)
    assert cost.seconds >= 0.0
    ledger = api_calls.CallLedger()
    ledger.note_response([_response(2, 10, 4), _response(1, 7, 1)])
    assert (ledger.prompt_tokens, ledger.completion_tokens, ledger.calls) == (17.0, 5.0, 1)


def test_a_response_without_usage_has_no_usage():
    assert api_calls.cost_of_response({"choices": [{"index": 0, "text": "x"}]}).usage is None
    assert api_calls.cost_of_response(None).usage is None


def _http_error(status: int, retry_after: str | None) -> Exception:
    headers = {} if retry_after is None else {"Retry-After": retry_after}
    error = Exception("failed")
    error.response = SimpleNamespace(status_code=status, headers=headers)  # type: ignore[attr-defined]
    return error


def test_retry_after_is_read_from_429_and_503_only_and_capped():
    assert api_calls.retry_after_seconds(_http_error(429, "3")) == 3.0
    assert api_calls.retry_after_seconds(_http_error(503, "1.5")) == 1.5
    assert api_calls.retry_after_seconds(_http_error(500, "3")) == 0.0
    assert api_calls.retry_after_seconds(_http_error(429, None)) == 0.0
    assert api_calls.retry_after_seconds(_http_error(429, "nan")) == 0.0
    assert api_calls.retry_after_seconds(_http_error(503, "soon")) == 0.0
    assert api_calls.retry_after_seconds(_http_error(429, "1e9")) == \
        api_calls.MAX_RETRY_AFTER_SECONDS
    later = email.utils.format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25.0 < api_calls.retry_after_seconds(_http_error(429, later)) <= 30.0
    aiohttp_style = Exception("failed")
    aiohttp_style.status = 429  # type: ignore[attr-defined]
    aiohttp_style.headers = {"Retry-After": "2"}  # type: ignore[attr-defined]
    assert api_calls.retry_after_seconds(aiohttp_style) == 2.0


def test_tokenizer_settings_are_parsed_or_refused_in_one_line(tmp_path: Path):
    assert parse_tokenizer_spec("org/model", "m").kind == "huggingface"
    assert parse_tokenizer_spec("tiktoken:o200k_base", "m").name == "o200k_base"
    with pytest.raises(ValueError, match="no such tiktoken file"):
        parse_tokenizer_spec(f"tiktoken:{tmp_path / 'cl100k_base.tiktoken'}", "m")
    with pytest.raises(ValueError, match=r"is not a tiktoken encoding; known encodings: .*cl100k"):
        load_tiktoken_encoding(parse_tokenizer_spec("tiktoken:no_such_base", "m"))
    broken = tmp_path / "broken.tiktoken"
    broken.write_bytes(b"IQ== 0\nnot-base64!! 1\n")
    with pytest.raises(ValueError, match=r"broken.tiktoken, line 2"):
        parse_tiktoken_ranks(broken.read_bytes(), broken)


def test_tiktoken_tokenizer_gives_offsets_that_cover_the_text():
    import tiktoken

    ranks = {bytes([b]): b for b in range(256)}
    ranks[b"th"] = 256
    ranks[b"the"] = 257
    encoding = tiktoken.Encoding("tiny", pat_str=r"\s?\S+|\s+", mergeable_ranks=ranks,
                                 special_tokens={})
    tokenizer = TiktokenTokenizer(encoding, "tiny")
    text = "the théâtre then"
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    spans = encoded["offset_mapping"]
    assert encoded["input_ids"] == encoding.encode_ordinary(text)
    assert spans[0][0] == 0 and spans[-1][1] == len(text)
    assert all(end == start for (_, end), (start, _) in itertools.pairwise(spans))
    assert tokenizer.decode(encoded["input_ids"]) == text
    assert tokenizer(["the", "then"])["input_ids"] == [[257], [257, ord("n")]]
    assert tokenizer.get_vocab()["the"] == 257 and len(tokenizer) == 258
