"""Training on several CPU processes (torchrun, gloo) with the real tiny Llama.

One step's global batch of 4 examples is split as 1 process x 4, 1 process x 2 x 2
accumulation steps, 2 DDP processes x 2 and 2 FSDP processes x 2: the same examples reach the
same step and the loss is normalised by the global batch's target tokens, so the updates agree
up to float32 summation order (the tolerance below: per-element gradient sums over a different
batch shape and an all-reduce differ in the last bits; Adam divides by the running RMS, so
such differences stay at a few ulps of the weights over 4 steps).

accelerate drops DeepSpeed for processes it runs on CPU (``ACCELERATE_USE_CPU``), so the
ZeRO-3 runs go without it, on DeepSpeed's CPU accelerator (gloo), and every run's recorded
strategy is checked: a ZeRO-3 test that ran plain DDP would fail.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from bench.train import build_parser, config_from_args

RUNNER = Path(__file__).with_name("run_training.py")
REPO = Path(__file__).resolve().parents[3]
WEIGHTS_ATOL = 1e-6
LOSS_RTOL = 1e-6

NEEDS_DEEPSPEED = pytest.mark.skipif(
    importlib.util.find_spec("deepspeed") is None,
    reason="deepspeed is not installed (pip install 'compressbench[deepspeed]')")

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not torch.distributed.is_gloo_available(),
                                 reason="torch without the gloo backend")]


def _write_config(folder: Path, data: Path, base: Path, **overrides: Any) -> Path:
    args = build_parser().parse_args([
        "pretrain", "--preset", "tiny-cpu", "--method", "500x", "--base", str(base),
        "--data", str(data), "--out", str(folder / "out"), "--no-progress"])
    values = config_from_args(args).as_json()
    values.update({"steps": 4, "eval_every": 0, "save_every": 100, "lora_dropout": 0.0,
                   **overrides})
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.json"
    path.write_text(json.dumps(values))
    return path


def _command(processes: int, config: Path, port: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes),
            "--master_port", str(port), str(RUNNER), str(config), *extra]


def _environment(*extra: str) -> dict[str, str]:
    """CPU processes: accelerate's multi-CPU mode, or DeepSpeed's CPU accelerator for
    ``--deepspeed`` (where ``ACCELERATE_USE_CPU`` would switch DeepSpeed off)."""
    cpu = ({"DS_ACCELERATOR": "cpu", "CUDA_VISIBLE_DEVICES": ""} if "--deepspeed" in extra
           else {"ACCELERATE_USE_CPU": "1"})
    environment = {key: value for key, value in os.environ.items()
                   if not key.startswith("ACCELERATE_")}
    return {**environment, **cpu, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1", "PYTHONPATH": str(REPO)}


def _run(processes: int, config: Path, port: int, *extra: str) -> Path:
    done = subprocess.run(_command(processes, config, port, *extra),
                          env=_environment(*extra), cwd=REPO, capture_output=True, text=True,
                          timeout=900, check=False)
    assert done.returncode == 0, done.stderr[-4000:]
    return config.parent / "out"


def _strategy(out: Path) -> str:
    """The distributed type the run recorded in its last checkpoint."""
    last = sorted(out.glob("checkpoint-*"))[-1]
    return str(json.loads((last / "trainer_state.json").read_text())["distributed_type"])


def _expected_strategy(extra: tuple[str, ...]) -> str:
    """What a run started by torchrun with ``extra`` must record (accelerate's multi-CPU
    mode for every torchrun process without DeepSpeed or FSDP, one process included)."""
    if "--deepspeed" in extra:
        return "DEEPSPEED"
    return "FSDP" if "--fsdp" in extra or "--fsdp-layers" in extra else "MULTI_CPU"


def _weights(out: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(out / "final" / "soft_weights.safetensors"))


def _losses(out: Path) -> list[float]:
    lines = (out / "train_log.jsonl").read_text().splitlines()
    return [float(json.loads(line)["loss"]) for line in lines]


def _max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[key] - b[key]).abs().max()) for key in a)


@pytest.fixture(scope="module")
def one_batch_of_four(story_corpus: Path, stories: Path, tmp_path_factory: pytest.TempPathFactory
                      ) -> Path:
    folder = tmp_path_factory.mktemp("batch4")
    return _run(1, _write_config(folder, story_corpus, stories, batch_size=4), 29701)


@pytest.mark.parametrize(("name", "processes", "settings", "extra"), [
    ("accumulated", 1, {"batch_size": 2, "grad_accum": 2}, ()),
    ("ddp", 2, {"batch_size": 2}, ()),
    ("fsdp", 2, {"batch_size": 2}, ("--fsdp",)),
    pytest.param("zero3", 2, {"batch_size": 2}, ("--deepspeed",), marks=NEEDS_DEEPSPEED),
])
@pytest.mark.slow
def test_split_global_batch_gives_the_same_update(
        one_batch_of_four: Path, story_corpus: Path, stories: Path, tmp_path: Path, name: str,
        processes: int, settings: dict[str, int], extra: tuple[str, ...]) -> None:
    port = {"accumulated": 29711, "ddp": 29712, "fsdp": 29713, "zero3": 29714}[name]
    out = _run(processes, _write_config(tmp_path, story_corpus, stories, **settings), port,
               *extra)
    assert _strategy(out) == _expected_strategy(extra)
    reference, split = _weights(one_batch_of_four), _weights(out)
    difference = _max_diff(reference, split)
    print(f"{name}: max |weight diff| vs 1 x 4 = {difference:.3g}, losses "
          f"{_losses(out)} vs {_losses(one_batch_of_four)}")
    assert difference <= WEIGHTS_ATOL
    assert _losses(out) == pytest.approx(_losses(one_batch_of_four), rel=LOSS_RTOL)
    moved = _max_diff(reference, _initial_weights(stories))
    assert moved > 100 * WEIGHTS_ATOL  # the four steps did change the weights


LM_UPDATE_RTOL = 1e-3
LM_METHOD_SETTINGS = {"num_mem": 2, "max_context_tokens": 32, "training_substeps": 2,
                      "segments_per_substep": 1}


def _lm_weights(out: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(out / "final" / "model.safetensors"))


@pytest.mark.parametrize(("method", "extra"), [
    ("gist", ()), ("autocompressor", ()),
    pytest.param("gist", ("--fsdp-layers",), id="gist-fsdp-per-layer"),
    pytest.param("autocompressor", ("--fsdp-layers",), id="autocompressor-fsdp-per-layer"),
    pytest.param("gist", ("--deepspeed",), marks=NEEDS_DEEPSPEED, id="gist-zero3")])
@pytest.mark.slow
def test_fine_tuned_lm_methods_give_the_same_update_on_two_processes(
        story_corpus: Path, stories: Path, tmp_path: Path, method: str,
        extra: tuple[str, ...]) -> None:
    """The LM-training methods under DDP: 2 x 2 equals 1 x 4 (one segment per substep, so
    that every cut is the same for both batch shapes).

    The whole LM is trained, and the gradients agree only to float32 summation order (about
    3e-7 relative); Adam divides each element by its own RMS, so an element whose gradient is
    at that noise level (a rarely seen token's embedding) can move by a different fraction of
    the learning rate. The bound is therefore on the update as a whole: its relative L2
    difference, besides the per-step losses."""
    port = ({"gist": 29731, "autocompressor": 29733}[method]
            + {(): 0, ("--deepspeed",): 4, ("--fsdp-layers",): 8}[extra])
    settings = {**LM_METHOD_SETTINGS, "method": method}
    whole = _run(1, _write_config(tmp_path / "whole", story_corpus, stories, batch_size=4,
                                  **settings), port)
    split = _run(2, _write_config(tmp_path / "split", story_corpus, stories, batch_size=2,
                                  **settings), port + 1, *extra)
    assert _strategy(split) == _expected_strategy(extra)
    initial = _lm_weights_of(stories)
    reference, other = _lm_weights(whole), _lm_weights(split)
    assert reference.keys() == other.keys()
    shared = [name for name in reference if name in initial
              and initial[name].shape == reference[name].shape]
    moved = torch.cat([(reference[name] - initial[name]).flatten() for name in shared])
    apart = torch.cat([(reference[name] - other[name]).flatten() for name in shared])
    relative = float(apart.norm() / moved.norm())
    print(f"{method} {' '.join(extra)}: |update difference| / |update| 2 x 2 vs 1 x 4 = "
          f"{relative:.3g}, max |weight diff| {float(apart.abs().max()):.3g}")
    assert float(moved.abs().max()) > 100 * WEIGHTS_ATOL  # the LM itself was trained
    assert relative <= LM_UPDATE_RTOL
    assert _losses(split) == pytest.approx(_losses(whole), rel=LOSS_RTOL)


def _lm_weights_of(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def _initial_weights(stories: Path) -> dict[str, torch.Tensor]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from bench.compressors.soft.encoder import checkpoint as ckpt
    from bench.compressors.soft.encoder.encoder import LoraSettings
    from bench.compressors.soft.five_hundred_x.compressor import KVSoftModel
    from bench.training.config import preset_values

    tiny = preset_values("tiny-cpu", "pretrain")
    model = KVSoftModel(AutoModelForCausalLM.from_pretrained(str(stories)),
                        AutoTokenizer.from_pretrained(str(stories)), tiny["num_mem"],
                        LoraSettings(tiny["lora_r"], tiny["lora_alpha"], 0.0), seed=0)
    return ckpt.weights_state(model)


def _wait_for_step(log: Path, step: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if log.is_file() and any(json.loads(line)["step"] >= step
                                 for line in log.read_text().splitlines() if line):
            return
        assert process.poll() is None, "the run ended before it could be killed"
        time.sleep(0.02)
    raise AssertionError(f"step {step} not reached")


def _descendants(pid: int) -> list[int]:
    """The processes below ``pid`` (torchrun starts its workers in sessions of their own)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(stat.parent.name))
    found, pending = [], [pid]
    while pending:
        for child in children.get(pending.pop(), []):
            found.append(child)
            pending.append(child)
    return found


def _kill_with_workers(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL a torchrun launcher and every worker it started."""
    workers = _descendants(process.pid)
    os.killpg(process.pid, signal.SIGKILL)
    for worker in workers:
        with contextlib.suppress(ProcessLookupError):
            os.kill(worker, signal.SIGKILL)
    process.wait()


@pytest.mark.parametrize(("strategy", "extra"), [
    ("ddp", ()), ("fsdp", ("--fsdp",)),
    pytest.param("zero3", ("--deepspeed",), marks=NEEDS_DEEPSPEED)])
@pytest.mark.slow
def test_killed_run_resumes_to_the_same_weights(story_corpus: Path, stories: Path,
                                                tmp_path: Path, strategy: str,
                                                extra: tuple[str, ...]) -> None:
    settings = {"batch_size": 2, "steps": 10, "save_every": 3, "lora_dropout": 0.1}
    port = {"ddp": 29721, "zero3": 29725, "fsdp": 29751}[strategy]
    straight = _run(2, _write_config(tmp_path / "straight", story_corpus, stories, **settings),
                    port, *extra)
    config = _write_config(tmp_path / "killed", story_corpus, stories, **settings)
    out = config.parent / "out"
    process = subprocess.Popen(_command(2, config, port + 1, *extra), env=_environment(*extra),
                               cwd=REPO,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    try:
        _wait_for_step(out / "train_log.jsonl", 5, process)
    finally:
        _kill_with_workers(process)
    assert not (out / "final").exists()
    saved = sorted(p.name for p in out.glob("checkpoint-*"))
    assert saved and set(saved) <= {"checkpoint-0000003", "checkpoint-0000006"}
    resumed = _run(2, config, port + 2, *extra)
    assert _strategy(straight) == _strategy(resumed) == _expected_strategy(extra)
    difference = _max_diff(_weights(straight), _weights(resumed))
    print(f"{strategy}: max |weight diff| resumed vs straight = {difference}, losses "
          f"{_losses(resumed)} vs {_losses(straight)}")
    assert difference == 0.0
    assert _losses(resumed) == _losses(straight)
    assert sorted(p.name for p in resumed.glob("checkpoint-*")) == [
        "checkpoint-0000009", "checkpoint-0000010"]


TIED_SETTINGS = {"num_mem": 2, "max_context_tokens": 32, "context_length": 32, "steps": 6,
                 "save_every": 2, "training_substeps": 1, "segments_per_substep": 1}
_ONE_UNIT = ((), ("--fsdp",), ("--deepspeed",))
_PER_LAYER = ((), ("--fsdp-layers",), ("--deepspeed",))
TIED_RUNS: list[tuple[str, tuple[str, ...]]] = [
    *[(method, extra) for method in ("500x", "icae") for extra in _ONE_UNIT],
    *[(method, extra) for method in ("gist", "autocompressor") for extra in _PER_LAYER]]


@pytest.fixture(scope="module")
def tied_one_process(story_corpus: Path, tied_stories: Path,
                     tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each method's run on one process with the global batch of the two-process runs
    (filled as the tests ask for them)."""
    return {}


def _tied_reference(cache: dict[str, Path], method: str, data: Path, base: Path,
                    folder: Path, port: int) -> Path:
    if method not in cache:
        config = _write_config(folder / f"one-{method}", data, base, method=method,
                               batch_size=4, **TIED_SETTINGS)
        cache[method] = _run(1, config, port)
    return cache[method]


@pytest.mark.parametrize(("method", "extra"), [
    pytest.param(method, extra, id=f"{method}-{extra[0].strip('-') if extra else 'ddp'}",
                 marks=[NEEDS_DEEPSPEED] if "--deepspeed" in extra else [])
    for method, extra in TIED_RUNS])
@pytest.mark.slow
def test_a_killed_run_on_a_tied_base_resumes_and_exports_under_each_strategy(
        story_corpus: Path, tied_stories: Path, tied_one_process: dict[str, Path],
        tmp_path_factory: pytest.TempPathFactory, tmp_path: Path, method: str,
        extra: tuple[str, ...]) -> None:
    """A base whose output embedding is its input embedding: a two-process run killed with
    ``kill -9`` resumes and exports the update one process makes on the same global batch,
    and the export loads through the method's compressor."""
    port = 29801 + 3 * TIED_RUNS.index((method, extra))
    reference = _tied_reference(tied_one_process, method, story_corpus, tied_stories,
                                tmp_path_factory.mktemp("tied"), port + 2)
    config = _write_config(tmp_path, story_corpus, tied_stories, method=method, batch_size=2,
                           **TIED_SETTINGS)
    out = config.parent / "out"
    process = subprocess.Popen(_command(2, config, port, *extra), env=_environment(*extra),
                               cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    try:
        _wait_for_step(out / "train_log.jsonl", 3, process)
    finally:
        _kill_with_workers(process)
    assert not (out / "final").exists() and list(out.glob("checkpoint-*"))
    _run(2, config, port + 1, *extra)
    assert _strategy(out) == _expected_strategy(extra)
    assert _losses(out) == pytest.approx(_losses(reference), rel=LOSS_RTOL)
    lm = method in ("gist", "autocompressor")
    exported, expected = (_lm_weights(out), _lm_weights(reference)) if lm else (
        _weights(out), _weights(reference))
    assert exported.keys() == expected.keys() and not [k for k in exported if "lm_head" in k]
    apart = torch.cat([(exported[k] - expected[k]).flatten() for k in expected])
    print(f"{method} {' '.join(extra)} on a tied base: max |weight diff| vs one process "
          f"{float(apart.abs().max()):.3g}")
    assert float(apart.abs().max()) <= (LM_TIED_ATOL if lm else WEIGHTS_ATOL)
    _compress_with_export(method, out / "final", tied_stories)


LM_TIED_ATOL = 1e-4


def _compress_with_export(method: str, final: Path, base: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from bench.compressors import CompressionRequest, build_compressor
    from bench.compressors._api import TargetModel

    folder = final if method in ("gist", "autocompressor") else base
    model = AutoModelForCausalLM.from_pretrained(str(folder)).eval()  # type: ignore[no-untyped-call]
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight
    target = TargetModel(folder.name, AutoTokenizer.from_pretrained(str(folder)), model)
    every: dict[str, dict[str, Any]] = {
        "500x": {"checkpoint": str(final)},
        "icae": {"variant": "500x-baseline", "checkpoint": str(final)},
        "gist": {"num_gist_tokens": 2}, "autocompressor": {}}
    options = every[method]
    (compressed,) = build_compressor(method, target, options).compress(
        [CompressionRequest("Lily saw a big red ball in the park.")])
    assert compressed.stats.compressed_tokens > 0
