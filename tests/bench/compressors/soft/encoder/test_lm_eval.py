"""The soft compressors through ``python -m bench eval --model compressed``."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import read_results, read_samples


def _eval(model_args: str, data: Path, out: Path) -> None:
    if importlib.util.find_spec("bench.lmeval.compressed_model") is None:
        pytest.skip("bench.lmeval.compressed_model (the compressed lm-eval model) is not available")
    env = {**os.environ, "COMPRESSBENCH_DATA": str(data), "HF_HUB_OFFLINE": "1",
           "HF_DATASETS_OFFLINE": "1"}
    command = [sys.executable, "-m", "bench", "eval", "--tasks", "compressed_squad",
               "--model", "compressed", "--model_args", model_args, "--limit", "2",
               "--device", "cpu", "--output_path", str(out), "--log_samples"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]


@pytest.mark.slow
def test_500x_runs_in_lm_eval(tmp_path: Path, tiny_model_dir: Path, demo_data_dir: Path) -> None:
    _eval(f"pretrained={tiny_model_dir},compressor=500x,num_mem=2", demo_data_dir, tmp_path)
    results = read_results(tmp_path)["results"]["compressed_squad"]  # type: ignore[index]
    assert results["compressed_tokens,none"] == 2
    assert 0.0 <= results["squad_f1,none"] <= 1.0
    samples = read_samples(tmp_path, "compressed_squad")
    assert len(samples) == 2


@pytest.mark.slow
def test_icae_checkpoint_loads_through_model_args(tmp_path: Path, tiny_model_dir: Path,
                                                  demo_data_dir: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from bench.compressors.soft.encoder.checkpoint import save_checkpoint
    from bench.compressors.soft.encoder.encoder import LoraSettings
    from bench.compressors.soft.icae.compressor import EmbeddingSoftModel

    model = EmbeddingSoftModel(AutoModelForCausalLM.from_pretrained(str(tiny_model_dir)),
                               AutoTokenizer.from_pretrained(str(tiny_model_dir)), 3,
                               LoraSettings(r=4), seed=9)
    save_checkpoint(model, tmp_path / "ckpt", str(tiny_model_dir))
    _eval(f"pretrained={tiny_model_dir},compressor=icae,variant=500x-baseline,"
          f"checkpoint={tmp_path / 'ckpt'}",
          demo_data_dir, tmp_path / "run")
    results = read_results(tmp_path / "run")
    assert results["results"]["compressed_squad"]["compressed_tokens,none"] == 3  # type: ignore[index]
    settings = results["config"]["compressbench"]["compressor"]["settings"]  # type: ignore[index]
    assert settings["num_mem"] == 3 and settings["seed"] == 9 and settings["checkpoint_sha256"]
