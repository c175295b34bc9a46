"""The training state in a resumable checkpoint, written and read without pickle.

Every file is data only (:mod:`.tensor_tree`), so a checkpoint folder from elsewhere can hold
wrong numbers but no code:

* ``model.safetensors``: the trained tensors by parameter name;
* ``optimizer.json`` + ``.safetensors``: the optimizer state, parameters by name;
* ``scheduler.json``; ``scaler.json`` where a gradient scaler runs (fp16);
* ``process_state_<rank>.json`` + ``.safetensors``: each process's place in the data,
  accumulation step and random number generator states.

Under DeepSpeed the model and optimizer are the engine's own sharded checkpoint in
``deepspeed/``, read with torch's weights-only unpickler (which builds tensors, containers and
DeepSpeed's few plain classes, and calls nothing else) instead of the two files above.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from bench.substrate.errors import InputError
from bench.training.batches import DataPosition
from bench.training.strategy import is_deepspeed, is_fsdp, trained_names
from bench.training.tensor_tree import (
    DAMAGED_HINT,
    read_tensors,
    read_tree,
    reading,
    write_tensors,
    write_tree,
)

if TYPE_CHECKING:
    from accelerate import Accelerator

WEIGHTS = "model.safetensors"
OPTIMIZER = "optimizer"
SCHEDULER = "scheduler"
SCALER = "scaler"
ENGINE = "deepspeed"
_RESUME_HINT = "resume with the settings it was written with"


def process_file(rank: int) -> str:
    return f"process_state_{rank}"


@dataclass
class TrainingState:
    """The prepared objects whose state a checkpoint holds."""

    accelerator: Accelerator
    module: Any
    optimizer: Any
    scheduler: Any
    position: DataPosition

    @property
    def deepspeed(self) -> bool:
        return is_deepspeed(self.accelerator)


def save_training_state(folder: Path, state: TrainingState, weights: dict[str, torch.Tensor]
                        ) -> None:
    """Write ``state`` into ``folder``; every process calls this (``weights``: the gathered
    trained tensors, on the main process)."""
    accelerator = state.accelerator
    write_tree(folder, process_file(accelerator.process_index), _process_state(state))
    if state.deepspeed:
        state.module.save_checkpoint(str(folder), ENGINE, exclude_frozen_parameters=True)
    else:
        _save_weights_and_optimizer(folder, state, weights)
    if accelerator.is_main_process:
        write_tree(folder, SCHEDULER, state.scheduler.state_dict())
        if accelerator.scaler is not None:
            write_tree(folder, SCALER, accelerator.scaler.state_dict())


def _save_weights_and_optimizer(folder: Path, state: TrainingState,
                                weights: dict[str, torch.Tensor]) -> None:
    optimizer = _named_optimizer_state(state)  # every process takes part under FSDP
    if state.accelerator.is_main_process:
        trained = _trained_names(state)
        write_tensors(folder / WEIGHTS, {k: v for k, v in weights.items() if k in trained})
        write_tree(folder, OPTIMIZER, optimizer)


def load_training_state(folder: Path, state: TrainingState) -> None:
    """Restore ``state`` from ``folder`` (every process reads the files it needs)."""
    accelerator = state.accelerator
    if state.deepspeed:
        _load_engine(folder, state.module)
    else:
        _load_weights(folder / WEIGHTS, state)
        optimizer = read_tree(folder, OPTIMIZER)
        with reading(folder / f"{OPTIMIZER}.json"):
            _load_named_optimizer_state(state, optimizer)
    _load_state_dict(folder, SCHEDULER, state.scheduler)
    if accelerator.scaler is not None:
        _load_state_dict(folder, SCALER, accelerator.scaler)
    name = process_file(accelerator.process_index)
    process = read_tree(folder, name)
    with reading(folder / f"{name}.json"):
        _restore_process_state(state, process)


def _load_state_dict(folder: Path, name: str, target: Any) -> None:
    """``target.load_state_dict`` from ``folder/NAME.json``, which must hold the same keys
    as the state ``target`` has."""
    path = folder / f"{name}.json"
    values = read_tree(folder, name)
    expected = set(target.state_dict())
    if not isinstance(values, dict) or set(values) != expected:
        raise InputError(f"does not hold the keys {sorted(expected)}", path, hint=DAMAGED_HINT)
    with reading(path):
        target.load_state_dict(values)


def _process_state(state: TrainingState) -> dict[str, Any]:
    name, keys, position, has_gauss, gauss = np.random.get_state(legacy=True)
    values: dict[str, Any] = {
        "data_position": state.position.state_dict(),
        "accumulation_step": int(state.accelerator.step),
        "python_random": random.getstate(),
        "numpy_random": {"name": name, "keys": np.asarray(keys).tolist(),
                         "position": int(position), "has_gauss": int(has_gauss),
                         "cached_gaussian": float(gauss)},
        "torch_random": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        values["cuda_random"] = torch.cuda.get_rng_state_all()
    return values


def _restore_process_state(state: TrainingState, values: dict[str, Any]) -> None:
    state.position.load_state_dict(values["data_position"])
    state.accelerator.step = int(values["accumulation_step"])
    random.setstate(values["python_random"])
    numpy = values["numpy_random"]
    np.random.set_state((str(numpy["name"]), np.asarray(numpy["keys"], dtype=np.uint32),
                         int(numpy["position"]), int(numpy["has_gauss"]),
                         float(numpy["cached_gaussian"])))
    torch.set_rng_state(values["torch_random"])
    if torch.cuda.is_available() and "cuda_random" in values:
        torch.cuda.set_rng_state_all(values["cuda_random"])


def _inner_optimizer(state: TrainingState) -> Any:
    return getattr(state.optimizer, "optimizer", state.optimizer)


def _parameter_names(state: TrainingState) -> list[str]:
    """The name of each parameter of the optimizer, in the optimizer's order."""
    inner = state.accelerator.unwrap_model(state.module)
    names = {id(parameter): name for name, parameter in inner.named_parameters()}
    return [names[id(parameter)] for group in _inner_optimizer(state).param_groups
            for parameter in group["params"]]


def _named_optimizer_state(state: TrainingState) -> dict[str, Any]:
    """The optimizer's state with parameters by name (whole tensors under FSDP, where every
    process must call this)."""
    optimizer = _inner_optimizer(state)
    if is_fsdp(state.accelerator):
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            get_optimizer_state_dict,
        )

        options = StateDictOptions(full_state_dict=True, cpu_offload=True)
        named: dict[str, Any] = get_optimizer_state_dict(state.module, optimizer,
                                                         options=options)
        return named
    names = _parameter_names(state)
    values = optimizer.state_dict()
    return {"state": {names[index]: entry for index, entry in values["state"].items()},
            "param_groups": [{**group, "params": [names[i] for i in group["params"]]}
                             for group in values["param_groups"]]}


def _load_named_optimizer_state(state: TrainingState, named: dict[str, Any]) -> None:
    optimizer = _inner_optimizer(state)
    if is_fsdp(state.accelerator):
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            set_optimizer_state_dict,
        )

        # Not strict: a trained tensor that never got a gradient (500x's last query LoRA)
        # has no optimizer state.
        set_optimizer_state_dict(state.module, optimizer, named,
                                 options=StateDictOptions(full_state_dict=True, strict=False))
        return
    index = {name: position for position, name in enumerate(_parameter_names(state))}
    optimizer.load_state_dict({
        "state": {index[name]: entry for name, entry in named["state"].items()},
        "param_groups": [{**group, "params": [index[name] for name in group["params"]]}
                         for group in named["param_groups"]]})


def _trained_names(state: TrainingState) -> set[str]:
    """The names of the trained parameters (as :func:`gathered_trainable_state` gives them)."""
    fsdp = is_fsdp(state.accelerator)
    return trained_names(state.module if fsdp else state.accelerator.unwrap_model(state.module))


def _load_weights(path: Path, state: TrainingState) -> None:
    """Load the trained tensors; the file must hold exactly the tensors this run trains."""
    trained = _trained_names(state)
    weights = read_tensors(path)
    if set(weights) != trained:
        missing, extra = sorted(trained - set(weights)), sorted(set(weights) - trained)
        raise InputError(f"holds other tensors than this run trains (missing {missing[:3]}, "
                         f"unexpected {extra[:3]})", path, hint=_RESUME_HINT)
    with reading(path):
        if not is_fsdp(state.accelerator):
            state.accelerator.unwrap_model(state.module).load_state_dict(weights, strict=False)
            return
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            set_model_state_dict,
        )

        values: dict[str, Any] = dict(weights)
        set_model_state_dict(state.module, values,
                             options=StateDictOptions(full_state_dict=True, strict=False))


def _load_engine(folder: Path, engine: Any) -> None:
    """Load DeepSpeed's checkpoint of the model and optimizer with the weights-only
    unpickler, and leave the parameters partitioned, as a new engine has them.

    Under ZeRO-3 ``load_checkpoint`` ends with the small (persistent) parameters gathered.
    DeepSpeed learns from the parameters it finds partitioned in the first forward pass
    which module needs one that is read outside its owner's forward (the soft memory, whose
    encoder returns no plain tensor to hook); found gathered, such a parameter is released
    after its owner's forward and missing in the backward pass."""
    engine.checkpoint_engine.load = _weights_only_load
    loaded, _ = engine.load_checkpoint(str(folder), ENGINE, load_module_strict=False,
                                       load_lr_scheduler_states=False)
    if loaded is None:
        raise InputError("holds no DeepSpeed checkpoint", folder / ENGINE, hint=_RESUME_HINT)
    engine.empty_partition_cache()


def _deepspeed_classes() -> list[Any]:
    """The classes DeepSpeed's checkpoint files hold beside tensors and containers."""
    from deepspeed.runtime.fp16.loss_scaler import LossScaler
    from deepspeed.runtime.zero.config import ZeroStageEnum

    return [ZeroStageEnum, LossScaler]


def _weights_only_load(path: str, map_location: Any = None) -> Any:
    """A DeepSpeed checkpoint file, built by torch's weights-only unpickler."""
    import pickle

    with torch.serialization.safe_globals(_deepspeed_classes()):
        try:
            return torch.load(path, map_location=map_location, weights_only=True)
        except pickle.UnpicklingError as error:
            raise InputError("holds objects other than tensors and plain values (possibly "
                             "code) and was not loaded", path, hint=DAMAGED_HINT) from error
        except (RuntimeError, EOFError, ValueError) as error:
            problem = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise InputError(f"not a readable checkpoint file ({problem})", path,
                             hint=DAMAGED_HINT) from error
