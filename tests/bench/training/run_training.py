"""Runs one training stage in this process (started by torchrun in the multi-process tests).

``python run_training.py CONFIG.json [--fsdp | --deepspeed]``: CONFIG.json holds the TrainConfig
fields. accelerate enables FSDP and DeepSpeed on GPUs only:
- ``--fsdp`` builds the accelerator with an FSDP2 plugin (one unit, as
  ``configs/accelerate/fsdp.yaml``) and marks the run as FSDP;
- ``--deepspeed`` sets the environment that ``accelerate launch --config_file
  configs/accelerate/deepspeed_zero3.yaml`` gives its processes (computed by accelerate's own
  launch code from the shipped file) and, since accelerate's CPU path counts one process
  under DeepSpeed, gives the accelerator the process group's size and rank;
so that the same preparation, checkpointing and gathering code runs on CPU processes.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import torch

from bench.training.config import TrainConfig
from bench.training.loop import train

REPO = Path(__file__).resolve().parents[3]


def fsdp_accelerator(config: TrainConfig, per_layer: bool = False) -> Any:
    from accelerate import Accelerator, FullyShardedDataParallelPlugin, PartialState
    from accelerate.utils import DistributedType

    wrap: dict[str, Any] = (
        {"auto_wrap_policy": "transformer_based_wrap",
         "transformer_cls_names_to_wrap": ["LlamaDecoderLayer"]} if per_layer else
        {"auto_wrap_policy": "no_wrap"})
    plugin = FullyShardedDataParallelPlugin(fsdp_version=2, state_dict_type="SHARDED_STATE_DICT",
                                            **wrap)
    accelerator = Accelerator(gradient_accumulation_steps=config.grad_accum,
                              step_scheduler_with_optimizer=False)
    accelerator.state.distributed_type = DistributedType.FSDP
    PartialState._shared_state["distributed_type"] = DistributedType.FSDP
    accelerator.state.fsdp_plugin = plugin
    return accelerator


def zero3_launch_environment() -> dict[str, str]:
    """What ``accelerate launch`` with the shipped ZeRO-3 config puts in the environment."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils.launch import prepare_deepspeed_cmd_env

    config_file = REPO / "configs" / "accelerate" / "deepspeed_zero3.yaml"
    args = launch_command_parser().parse_args(["--config_file", str(config_file), "-m", "x"])
    args, defaults, mixed_from_config = _validate_launch_command(args)
    fields = list(defaults.deepspeed_config) + (["mixed_precision"] if mixed_from_config else [])
    args.deepspeed_fields_from_accelerate_config = ",".join(fields)
    _, env = prepare_deepspeed_cmd_env(args)
    return {key: value for key, value in env.items() if key.startswith("ACCELERATE_")}


def deepspeed_accelerator(config: TrainConfig) -> Any:
    from accelerate import PartialState
    from accelerate.state import AcceleratorState

    from bench.training.strategy import make_accelerator

    os.environ.update(zero3_launch_environment())
    accelerator = make_accelerator(config)
    world = {"num_processes": torch.distributed.get_world_size(),
             "process_index": torch.distributed.get_rank(),
             "local_process_index": int(os.environ["LOCAL_RANK"])}
    PartialState._shared_state.update(world)
    AcceleratorState._shared_state.update(world)
    return accelerator


def main() -> None:
    torch.set_num_threads(1)
    values = json.loads(Path(sys.argv[1]).read_text())
    values["lora_targets"] = tuple(values["lora_targets"])
    config = TrainConfig(**values)
    accelerator = None
    if "--fsdp" in sys.argv or "--fsdp-layers" in sys.argv:
        accelerator = fsdp_accelerator(config, per_layer="--fsdp-layers" in sys.argv)
    elif "--deepspeed" in sys.argv:
        accelerator = deepspeed_accelerator(config)
    train(config, accelerator)


if __name__ == "__main__":
    main()
