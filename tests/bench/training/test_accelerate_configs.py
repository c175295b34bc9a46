"""The shipped ``configs/accelerate/*.yaml`` go through accelerate's own launch parsers and
give the plugins the training code expects (FSDP as one unit, ZeRO-3 with every ``auto``
value filled from the run)."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.substrate.errors import DEBUG_ENV
from bench.training.config import TrainConfig
from bench.training.strategy import check_fsdp, check_launched_strategy, mixed_precision

CONFIGS = Path(__file__).resolve().parents[3] / "configs" / "accelerate"


def _launch_env(name: str) -> dict[str, str]:
    """The environment ``accelerate launch --config_file`` gives the training processes."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils.launch import prepare_deepspeed_cmd_env, prepare_multi_gpu_env

    args = launch_command_parser().parse_args(
        ["--config_file", str(CONFIGS / f"{name}.yaml"), "-m", "bench.train"])
    args, defaults, mixed_from_config = _validate_launch_command(args)
    if name.startswith("deepspeed"):  # as accelerate's launch_command fills it
        fields = list(defaults.deepspeed_config)
        if mixed_from_config:
            fields.append("mixed_precision")
        args.deepspeed_fields_from_accelerate_config = ",".join(fields)
        _, env = prepare_deepspeed_cmd_env(args)
        return dict(env)
    return dict(prepare_multi_gpu_env(args))


def _apply(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in env.items():
        if key.startswith(("ACCELERATE", "FSDP")):
            monkeypatch.setenv(key, value)


@pytest.mark.parametrize(("name", "kind"), [("ddp", "MULTI_GPU"), ("fsdp", "FSDP"),
                                            ("fsdp_layers", "FSDP"),
                                            ("deepspeed_zero3", "DEEPSPEED")])
def test_config_files_parse_and_train_in_bf16_on_gpus(name: str, kind: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from accelerate.commands.config.config_args import load_config_from_file

    config = load_config_from_file(str(CONFIGS / f"{name}.yaml"))
    assert str(config.distributed_type).endswith(kind)
    run = TrainConfig(stage="pretrain", method="500x", base="b", data="d", out="o")
    _apply(_launch_env(name), monkeypatch)
    assert mixed_precision(run, cuda=True) == "bf16"
    assert mixed_precision(run, cuda=False) == ("no" if name.startswith("deepspeed") else
                                                "bf16")


def test_zero3_launch_environment_passes_accelerates_checks(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """accelerate refuses a DeepSpeed config file beside accelerate-level settings such as
    ``mixed_precision`` when the plugin is built in the launched process."""
    from accelerate.utils import DeepSpeedPlugin

    env = _launch_env("deepspeed_zero3")
    assert env["ACCELERATE_CONFIG_DS_FIELDS"] == "deepspeed_config_file,zero3_init_flag"
    _apply(env, monkeypatch)
    DeepSpeedPlugin()
    monkeypatch.setenv("ACCELERATE_CONFIG_DS_FIELDS", env["ACCELERATE_CONFIG_DS_FIELDS"]
                       + ",mixed_precision")
    with pytest.raises(ValueError, match="deepspeed_config_file"):
        DeepSpeedPlugin()


def test_fsdp_config_shards_the_model_as_one_unit(monkeypatch: pytest.MonkeyPatch) -> None:
    from accelerate import FullyShardedDataParallelPlugin

    _apply(_launch_env("fsdp"), monkeypatch)
    plugin = FullyShardedDataParallelPlugin()
    assert plugin.fsdp_version == 2
    assert plugin.auto_wrap_policy is None
    assert plugin.cpu_ram_efficient_loading

    class Stand:
        distributed_type = "FSDP"

    accelerator: Any = Stand()
    accelerator.state = type("State", (), {"fsdp_plugin": plugin})()
    monkeypatch.setattr("bench.training.strategy.is_fsdp", lambda _: True)
    check_fsdp(accelerator, "500x")
    plugin.auto_wrap_policy = object()
    for method in ("500x", "icae"):
        with pytest.raises(ValueError, match=f"NO_WRAP for --method {method}"):
            check_fsdp(accelerator, method)
    for method in ("gist", "autocompressor"):  # they train the LM itself: per-layer units
        check_fsdp(accelerator, method)


def test_fsdp_layers_config_wraps_each_decoder_layer(monkeypatch: pytest.MonkeyPatch) -> None:
    from accelerate import FullyShardedDataParallelPlugin

    _apply(_launch_env("fsdp_layers"), monkeypatch)
    plugin = FullyShardedDataParallelPlugin()
    assert plugin.fsdp_version == 2
    assert plugin.auto_wrap_policy is not None
    assert plugin.transformer_cls_names_to_wrap == ["LlamaDecoderLayer"]


def _filled_zero3(monkeypatch: pytest.MonkeyPatch, config: TrainConfig,
                  processes: int) -> dict[str, Any]:
    """The DeepSpeed config as accelerate fills it for ``config`` (see its _prepare_deepspeed)."""
    from accelerate.utils import DeepSpeedPlugin

    env = _launch_env("deepspeed_zero3")
    _apply(env, monkeypatch)
    plugin = DeepSpeedPlugin()
    assert plugin.zero3_init_flag
    assert plugin.deepspeed_config["zero_optimization"]["stage"] == 3
    plugin.deepspeed_config["gradient_clipping"] = config.max_grad_norm
    plugin.deepspeed_config_process(must_match=True, **{
        "train_micro_batch_size_per_gpu": config.batch_size,
        "train_batch_size": config.batch_size * config.grad_accum * processes,
        "gradient_accumulation_steps": config.grad_accum,
        "bf16.enabled": True,
    })
    filled: dict[str, Any] = plugin.deepspeed_config
    return filled


def test_zero3_config_has_no_auto_value_left(monkeypatch: pytest.MonkeyPatch) -> None:
    config = TrainConfig(stage="pretrain", method="500x", base="b", data="d", out="o",
                         batch_size=2, grad_accum=3, max_grad_norm=0.5)
    filled = _filled_zero3(monkeypatch, config, processes=8)
    assert "auto" not in json.dumps(filled)
    assert (filled["train_micro_batch_size_per_gpu"], filled["train_batch_size"],
            filled["gradient_accumulation_steps"], filled["gradient_clipping"]) == (2, 48, 3, 0.5)
    shipped = json.loads((CONFIGS / "deepspeed_zero3.json").read_text())
    # The trigger and memory (k x hidden, 1 x hidden) stay whole on every process.
    assert shipped["zero_optimization"]["stage3_param_persistence_threshold"] >= 4 * 8192


@pytest.mark.skipif(importlib.util.find_spec("deepspeed") is None,
                    reason="deepspeed is not installed (pip install 'compressbench[deepspeed]')")
def test_zero3_config_passes_deepspeed_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    from deepspeed.runtime.config import DeepSpeedConfig

    config = TrainConfig(stage="pretrain", method="500x", base="b", data="d", out="o",
                         batch_size=2, grad_accum=2)
    filled = _filled_zero3(monkeypatch, config, processes=1)
    parsed = DeepSpeedConfig(filled)
    assert parsed.zero_optimization_stage == 3
    assert (parsed.train_batch_size, parsed.gradient_accumulation_steps) == (4, 2)
    assert parsed.bfloat16_config.enabled


@pytest.fixture()
def fresh_accelerate_state() -> Iterator[None]:
    """accelerate keeps its state in process-wide singletons: start and leave them empty."""
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
    yield
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()


@pytest.mark.usefixtures("fresh_accelerate_state")
def test_a_zero3_launch_that_runs_without_deepspeed_is_refused(
        stories: Path, small_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """accelerate drops DeepSpeed without a word for CPU processes (``--cpu``): the run
    must not train as something other than the ZeRO-3 it was launched for."""
    from bench.train import main

    _apply(_launch_env("deepspeed_zero3"), monkeypatch)
    monkeypatch.setenv("ACCELERATE_USE_CPU", "1")
    monkeypatch.delenv(DEBUG_ENV, raising=False)
    out = tmp_path / "out"
    status = main(["pretrain", "--preset", "tiny-cpu", "--method", "500x", "--base",
                   str(stories), "--data", str(small_corpus), "--out", str(out), "--steps", "2",
                   "--eval-every", "0", "--no-progress"])
    error = capsys.readouterr().err
    assert status == 2
    assert error == ("error: the launch config asks for DEEPSPEED (ACCELERATE_USE_DEEPSPEED="
                     "true) but accelerate runs NO: it drops DEEPSPEED for CPU processes "
                     "(--cpu, use_cpu: true, ACCELERATE_USE_CPU); launch on GPUs, or without "
                     "DEEPSPEED (configs/accelerate/ddp.yaml)\n")
    assert not out.exists()


def test_an_accelerator_that_miscounts_the_processes_is_refused(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Under DeepSpeed without GPUs accelerate counts one process on every rank: each would
    read every batch and write as the main process."""
    from accelerate.utils import DistributedType

    class Stand:
        distributed_type = DistributedType.DEEPSPEED
        num_processes = 1

    accelerator: Any = Stand()
    monkeypatch.delenv("ACCELERATE_USE_DEEPSPEED", raising=False)
    monkeypatch.setattr("torch.distributed.is_initialized", lambda: True)
    monkeypatch.setattr("torch.distributed.get_world_size", lambda: 2)
    with pytest.raises(ValueError, match="accelerate counts 1 process but 2 were launched"):
        check_launched_strategy(accelerator)
    accelerator.num_processes = 2
    check_launched_strategy(accelerator)
