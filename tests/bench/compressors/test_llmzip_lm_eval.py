"""``llmzip`` through the stock ``lm_eval`` command: answers equal ``none``, exact bits logged."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.lmeval.run import run_lm_eval
from tests.conftest import read_results, read_samples

TASK = "compressed_squad"
LIMIT = 2


def _run_stock_lm_eval(model_args: str, data: Path, out: Path) -> None:
    program = Path(sys.executable).parent / "lm_eval"
    if not program.is_file():
        pytest.skip(f"the lm_eval command is not installed next to {sys.executable}")
    env = {**os.environ, "COMPRESSBENCH_DATA": str(data), "HF_HUB_OFFLINE": "1",
           "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    command = [str(program), "--tasks", TASK, "--model", "compressed", "--model_args",
               model_args, "--limit", str(LIMIT), "--device", "cpu", "--output_path", str(out),
               "--log_samples"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]


@pytest.mark.slow
def test_llmzip_answers_like_none_and_logs_its_exact_code_length(
        tmp_path: Path, tiny_model_dir: Path, data_env: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from bench.compressors._llmzip_codec import LlmzipCodec

    _run_stock_lm_eval(f"pretrained={tiny_model_dir},compressor=llmzip,compression_cache=off",
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
