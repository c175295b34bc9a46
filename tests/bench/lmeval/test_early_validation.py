"""Errors before cost: the compressbench models refuse a compressor name or option before they
load the target model, its tokenizer or any compressor model."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from bench.compressors import UnknownCompressorError
from bench.substrate.errors import DEBUG_ENV, EXIT_INPUT, InputError

BAD = [
    ({"compressor": "trunacte", "rate": 0.5}, UnknownCompressorError,
     "(did you mean 'truncate'?)"),
    ({"compressor": "truncate", "rate": 2}, InputError, "option rate must be in [0, 1], got 2"),
    ({"compressor": "llmlingua2", "rate": 2}, InputError, "option rate must be in [0, 1], got 2"),
    ({"compressor": "truncate", "rat": 0.5}, InputError, "(did you mean 'rate'?)"),
]


def _must_not_load(*args: Any, **kwargs: Any) -> None:
    raise AssertionError("a model or tokenizer was loaded before the options were checked")


@pytest.mark.parametrize(("arguments", "error", "message"), BAD)
def test_compressed_refuses_before_loading_the_target(monkeypatch: pytest.MonkeyPatch,
                                                      arguments: dict[str, Any],
                                                      error: type[Exception],
                                                      message: str) -> None:
    from bench.lmeval.compressed_model import CompressedLM

    monkeypatch.setattr(CompressedLM, "_load_target", _must_not_load)
    with pytest.raises(error) as raised:
        CompressedLM(pretrained="no/such-model", **arguments)
    assert message in str(raised.value)


@pytest.mark.parametrize(("arguments", "error", "message"), BAD)
def test_compressed_reader_refuses_before_loading_the_tokenizer(
        monkeypatch: pytest.MonkeyPatch, arguments: dict[str, Any], error: type[Exception],
        message: str) -> None:
    from bench import hub
    from bench.lmeval.reader_model import CompressedReaderLM

    monkeypatch.setattr(hub, "load_from_hub", _must_not_load)
    with pytest.raises(error) as raised:
        CompressedReaderLM(tokenizer="no/such-tokenizer", **arguments)
    assert message in str(raised.value)


def test_a_served_model_refuses_before_it_is_set_up(monkeypatch: pytest.MonkeyPatch) -> None:
    from lm_eval.models.openai_completions import LocalCompletionsAPI

    from bench.lmeval.api_models import CompressedCompletionsLM

    monkeypatch.setattr(LocalCompletionsAPI, "__init__", _must_not_load)
    with pytest.raises(InputError, match=r"option rate must be in \[0, 1\], got 2"):
        CompressedCompletionsLM(model="m", base_url="http://127.0.0.1:9/v1/completions",
                                tokenizer="tiktoken:cl100k_base", compressor="truncate", rate=2)


@pytest.mark.slow  # lm-eval's command line indexes its 14,000 tasks first (15 s)
def test_bench_eval_ends_in_one_line_before_loading(monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from bench.__main__ import main
    from bench.lmeval.compressed_model import CompressedLM

    monkeypatch.delenv(DEBUG_ENV, raising=False)
    monkeypatch.setattr(sys, "argv", list(sys.argv))  # lm-eval's command line replaces it
    monkeypatch.setattr(CompressedLM, "_load_target", _must_not_load)
    status = main(["eval", "--model", "compressed", "--tasks", "compressed_squad",
                   "--model_args", "pretrained=no/such-model,compressor=truncate,rat=0.5"])
    assert status == EXIT_INPUT
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.splitlines()[-1] == (
        "error: compressor 'truncate' does not accept option(s) rat (did you mean 'rate'?); "
        "accepted options: rate, target_tokens")
