"""Runs one training stage in this process (started by torchrun in the multi-process tests).

``python run_training.py CONFIG.json [--fsdp]``: CONFIG.json holds the TrainConfig fields.
accelerate enables FSDP on GPUs only; ``--fsdp`` builds the accelerator with an FSDP2 plugin
(one unit, as ``configs/accelerate/fsdp.yaml``) and marks the run as FSDP
so that the same preparation, checkpointing and gathering code runs on CPU processes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import torch

from bench.training.config import TrainConfig
from bench.training.loop import train


def fsdp_accelerator(config: TrainConfig) -> Any:
    from accelerate import Accelerator, FullyShardedDataParallelPlugin, PartialState
    from accelerate.utils import DistributedType

    plugin = FullyShardedDataParallelPlugin(fsdp_version=2, auto_wrap_policy="no_wrap",
                                            state_dict_type="SHARDED_STATE_DICT")
    accelerator = Accelerator(gradient_accumulation_steps=config.grad_accum,
                              step_scheduler_with_optimizer=False)
    accelerator.state.distributed_type = DistributedType.FSDP
    PartialState._shared_state["distributed_type"] = DistributedType.FSDP
    accelerator.state.fsdp_plugin = plugin
    return accelerator


def main() -> None:
    torch.set_num_threads(1)
    values = json.loads(Path(sys.argv[1]).read_text())
    values["lora_targets"] = tuple(values["lora_targets"])
    config = TrainConfig(**values)
    accelerator = fsdp_accelerator(config) if "--fsdp" in sys.argv else None
    train(config, accelerator)


if __name__ == "__main__":
    main()
