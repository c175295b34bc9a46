"""ICAE v2 end to end through the stock ``lm_eval`` command with a released-format checkpoint.

The demo data is prepared in the tokens of the reference fixture's base model, which then
answers ``compressed_squad`` from the fine-tuned checkpoint's slots.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.bench.compressors.soft.reference_fixtures import case_ids, load_fixture
from tests.conftest import read_results, read_samples

METHOD = "icae_v2"
TASK = "compressed_squad"


def lm_eval_executable() -> Path:
    path = Path(sys.executable).parent / "lm_eval"
    if not path.is_file():
        pytest.skip(f"the lm_eval command is not installed next to {sys.executable}")
    return path


@pytest.mark.slow
def test_icae_v2_runs_in_stock_lm_eval(tmp_path: Path) -> None:
    if importlib.util.find_spec("bench.lmeval.compressed_model") is None:
        pytest.skip("bench.lmeval.compressed_model (the compressed lm-eval model) is not available")
    fixture = load_fixture(METHOD)
    case = fixture.case(case_ids(METHOD, "qa")[0])
    base = fixture.path / case["base_model"]
    checkpoint = fixture.path / case["checkpoint"]
    from bench.demo import prepare_demo_data

    data = tmp_path / "data"
    prepare_demo_data(base, data)
    env = {**os.environ, "COMPRESSBENCH_DATA": str(data), "HF_HUB_OFFLINE": "1",
           "HF_DATASETS_OFFLINE": "1"}
    out = tmp_path / "run"
    command = [str(lm_eval_executable()), "--tasks", TASK, "--model", "compressed",
               "--model_args", f"pretrained={base},compressor=icae,variant=v2,"
                               f"checkpoint={checkpoint},compression_cache=off",
               "--limit", "2", "--device", "cpu", "--output_path", str(out), "--log_samples"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    check_run(out, checkpoint, base)


def check_run(out: Path, checkpoint: Path, base: Path) -> None:
    from safetensors import safe_open
    from transformers import AutoTokenizer

    from bench._atomic import sha256_file
    from bench.compressors.soft.icae_v2 import IcaeV2Options
    from bench.compressors.soft.icae_v2_checkpoint import MEMORY_KEY
    from bench.compressors.soft.icae_v2_layout import PromptTokens, num_slots

    results = read_results(out)
    settings: dict[str, Any] = results["config"]["compressbench"]["compressor"]["settings"]
    assert settings["variant"] == "v2" and settings["mode"] == "finetuned"
    assert settings["checkpoint_sha256"] == sha256_file(checkpoint)
    with safe_open(str(checkpoint), framework="pt") as handle:
        rows = handle.get_slice(MEMORY_KEY).get_shape()[0]
    assert settings["num_mem"] == rows - 3
    samples = read_samples(out, TASK)
    assert len(samples) == 2
    assert all(isinstance(sample["resps"][0][0], str) for sample in samples)
    tokenizer = AutoTokenizer.from_pretrained(str(base))
    bos = len(PromptTokens.from_tokenizer(tokenizer).with_bos([]))
    rate = IcaeV2Options().mean_compression_rate
    for sample in samples:
        encoder_tokens = int(sample["original_tokens"]) + bos
        assert sample["compressed_tokens"] == num_slots(encoder_tokens, settings["num_mem"], rate)
    slots = [sample["compressed_tokens"] for sample in samples]
    metrics = results["results"][TASK]
    assert metrics["compressed_tokens,none"] == pytest.approx(sum(slots) / len(slots))
