"""Fixtures shared by the whole suite: tiny local models and prepared demo data."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED = REPO_ROOT.parent / "shared"

# Every cache a test run could write (the compression cache, Hugging Face, matplotlib,
# tiktoken) goes to one temporary folder, so that no test writes outside temporary folders;
# subprocesses inherit it.
_CACHE_VARIABLES = ("XDG_CACHE_HOME", "HF_DATASETS_CACHE", "MPLCONFIGDIR", "TIKTOKEN_CACHE_DIR")


def pytest_configure(config: pytest.Config) -> None:
    """Point the cache variables at a fresh temporary folder (before any test runs)."""
    import os
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="compressbench-test-caches-"))
    for name in _CACHE_VARIABLES:
        os.environ[name] = str(root / name.lower())


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` beside the checkout; skips the test when it is absent."""
    path = SHARED / "data"
    if not path.is_dir():
        pytest.skip(f"shared data not found at {path} (only present in developer checkouts/CI)")
    return path


@pytest.fixture()
def one_torch_thread() -> Iterator[None]:
    """Run a test with one intra-op torch thread: tiny models gain nothing from more, and
    oversubscribed CI cores lose a lot. Folders opt in with an autouse wrapper."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny seeded Llama whose tokenizer is trained on the bundled demo texts."""
    from bench.demo import _demo_texts
    from bench.tiny import build_tiny_model

    return build_tiny_model(_demo_texts(), tmp_path_factory.mktemp("tiny-llama"), seed=0)


@pytest.fixture(scope="session")
def demo_data_dir(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    """The bundled demo data prepared for every benchmark with the tiny tokenizer."""
    from bench.demo import prepare_demo_data

    root = tmp_path_factory.mktemp("data")
    prepare_demo_data(tiny_model_dir, root)
    return root


@pytest.fixture()
def data_env(demo_data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """COMPRESSBENCH_DATA pointing at the prepared demo data, offline hub settings."""
    monkeypatch.setenv("COMPRESSBENCH_DATA", str(demo_data_dir))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    from bench.harness import sample_log

    sample_log.clear()
    yield demo_data_dir
    sample_log.clear()


def read_samples(run_dir: Path, task: str) -> list[dict[str, Any]]:
    """The ``samples_<task>_<date>.jsonl`` lines of an lm-eval output folder."""
    files = sorted(run_dir.rglob(f"samples_{task}_2*.jsonl"))
    assert files, f"no samples file for {task} under {run_dir}"
    return [json.loads(line) for line in files[-1].read_text(encoding="utf-8").splitlines()]


def read_results(run_dir: Path) -> dict[str, Any]:
    """The newest ``results_*.json`` under an lm-eval output folder."""
    files = sorted(run_dir.rglob("results_*.json"))
    assert files, f"no results file under {run_dir}"
    loaded: dict[str, Any] = json.loads(files[-1].read_text(encoding="utf-8"))
    return loaded


def run_stock_lm_eval(model_args: str, data: Path, out: Path, task: str = "compressed_squad",
                      limit: int = 2) -> None:
    """Run the installed ``lm_eval`` command with ``--model compressed`` on the prepared
    ``data`` (offline, one thread, samples logged into ``out``); skips where the command is
    not installed next to this Python."""
    import os
    import subprocess
    import sys

    program = Path(sys.executable).parent / "lm_eval"
    if not program.is_file():
        pytest.skip(f"the lm_eval command is not installed next to {sys.executable}")
    env = {**os.environ, "COMPRESSBENCH_DATA": str(data), "HF_HUB_OFFLINE": "1",
           "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    command = [str(program), "--tasks", task, "--model", "compressed", "--model_args",
               model_args, "--limit", str(limit), "--device", "cpu", "--output_path",
               str(out), "--log_samples"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600,
                          check=False)
    assert done.returncode == 0, done.stderr[-4000:]
