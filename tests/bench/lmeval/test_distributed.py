"""Data-parallel evaluation: 2 CPU processes shard the requests and gather identical results."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import read_results, read_samples


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("torchrun") is None, reason="torchrun not installed")
def test_two_processes_match_one(tmp_path: Path, tiny_model_dir: Path, demo_data_dir: Path):
    env = {**os.environ, "COMPRESSBENCH_DATA": str(demo_data_dir), "HF_HUB_OFFLINE": "1",
           "HF_DATASETS_OFFLINE": "1", "COMPRESSBENCH_LM_EVAL": "1", "ACCELERATE_USE_CPU": "1",
           "OMP_NUM_THREADS": "1"}
    common = ["-m", "lm_eval", "--model", "compressed", "--model_args",
              f"pretrained={tiny_model_dir},compressor=truncate,rate=0.5,compression_cache=off",
              "--tasks", "compressed_squad", "--limit", "4", "--device", "cpu", "--log_samples"]
    outputs = {}
    for processes in (1, 2):
        out = tmp_path / f"p{processes}"
        command = ["torchrun", "--nproc_per_node", str(processes), "--master_port",
                   str(29500 + processes), *common, "--output_path", str(out)]
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        if processes == 2:
            assert "on rank 1" in done.stderr + done.stdout
        outputs[processes] = out
    one, two = (read_samples(outputs[n], "compressed_squad") for n in (1, 2))
    assert sorted((s["doc_id"], s["resps"]) for s in one) == \
        sorted((s["doc_id"], s["resps"]) for s in two)
    r1, r2 = (read_results(outputs[n])["results"]["compressed_squad"] for n in (1, 2))
    for metric in ("squad_f1,none", "compression_ratio,none", "original_tokens,none"):
        assert r1[metric] == r2[metric]  # type: ignore[index]
