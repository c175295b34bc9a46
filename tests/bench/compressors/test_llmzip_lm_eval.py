"""``llmzip`` through the stock ``lm_eval`` command: answers equal ``none``, exact bits logged."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.lmeval.run import run_lm_eval
from tests.conftest import read_results, read_samples, run_stock_lm_eval

TASK = "compressed_squad"
LIMIT = 2


@pytest.mark.slow
def test_llmzip_answers_like_none_and_logs_its_exact_code_length(
        tmp_path: Path, tiny_model_dir: Path, data_env: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from bench.compressors._llmzip_codec import LlmzipCodec

    run_stock_lm_eval(f"pretrained={tiny_model_dir},compressor=llmzip,compression_cache=off",
                       data_env, tmp_path / "llmzip")
    run_lm_eval("compressed", f"pretrained={tiny_model_dir},compressor=none,"
                "compression_cache=off", (TASK,), tmp_path / "none", limit=LIMIT)
    coded = read_samples(tmp_path / "llmzip", TASK)
    plain = read_samples(tmp_path / "none", TASK)
    assert len(coded) == len(plain) == LIMIT

    codec = LlmzipCodec(AutoModelForCausalLM.from_pretrained(str(tiny_model_dir)).eval(),  # type: ignore[no-untyped-call]
                        AutoTokenizer.from_pretrained(str(tiny_model_dir)))
    for zipped, kept in zip(coded, plain, strict=True):
        assert zipped["doc"]["context"] == kept["doc"]["context"]
        assert zipped["resps"] == kept["resps"]
        assert zipped["squad_f1"] == kept["squad_f1"]
        code = codec.encode(zipped["doc"]["context"])
        assert codec.decode(code) == zipped["doc"]["context"]
        assert zipped["compressed_bits"] == code.bits == kept["compressed_bits"]
        assert zipped["bits_per_token"] == code.bits / zipped["original_tokens"]
        assert zipped["compression_ratio"] == 1.0

    results = read_results(tmp_path / "llmzip")
    info = results["config"]["compressbench"]
    assert info["compressor"]["name"] == "llmzip"
    summary = info["per_task"][TASK]
    total_bits = sum(sample["compressed_bits"] for sample in coded)
    total_tokens = sum(sample["original_tokens"] for sample in coded)
    assert summary["bits_per_original_token"] == pytest.approx(total_bits / total_tokens)
    assert results["results"][TASK]["compressed_bits,none"] == pytest.approx(total_bits / LIMIT)
