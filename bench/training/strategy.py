"""What differs between one process, DDP, FSDP and DeepSpeed ZeRO-3 (all through accelerate).

The strategy comes from ``accelerate launch --config_file configs/accelerate/...``; this module
creates the :class:`accelerate.Accelerator`, adjusts the DeepSpeed config to the run and
gathers the trained tensors of a sharded model on the main process (every process must call
:func:`gathered_trainable_state`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import torch
from torch import nn

from bench.substrate.errors import InputError
from bench.training.config import TrainConfig
from bench.training.registry import PER_LAYER_FSDP, training_method

if TYPE_CHECKING:
    from accelerate import Accelerator

def mixed_precision(config: TrainConfig, cuda: bool) -> str:
    """bf16 autocast on CUDA (for ``--dtype auto|bfloat16``) unless the launch config says
    otherwise. A launch with a DeepSpeed config file cannot say it (accelerate refuses
    ``mixed_precision`` beside ``deepspeed_config_file`` and passes its default, "no"): there
    the run decides, and the config file's ``"bf16": {"enabled": "auto"}`` follows."""
    launched = os.environ.get("ACCELERATE_MIXED_PRECISION")
    if launched is not None and not os.environ.get("ACCELERATE_DEEPSPEED_CONFIG_FILE"):
        return launched
    return "bf16" if cuda and config.dtype in ("auto", "bfloat16") else "no"


def make_accelerator(config: TrainConfig) -> Accelerator:
    """The accelerator of the run (mixed precision: :func:`mixed_precision`); the scheduler
    steps once per optimizer step."""
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs

    mixed = mixed_precision(config, torch.cuda.is_available())
    # Some trained tensors get no gradient in most stages (the last layer's query LoRA in
    # 500x: only keys and values leave the encoder); each method declares where all do.
    unused = config.stage not in training_method(config.method).every_parameter_trained_in
    return Accelerator(gradient_accumulation_steps=config.grad_accum, mixed_precision=mixed,
                       step_scheduler_with_optimizer=False,
                       kwargs_handlers=[DistributedDataParallelKwargs(
                           find_unused_parameters=unused)])


# What ``accelerate launch`` asks for, by the variable it sets for the training processes.
_LAUNCHED = {"ACCELERATE_USE_DEEPSPEED": "DEEPSPEED", "ACCELERATE_USE_FSDP": "FSDP"}


def distributed_type(accelerator: Accelerator) -> str:
    """The strategy the run has: NO, MULTI_CPU, MULTI_GPU, FSDP, DEEPSPEED, ..."""
    return str(accelerator.distributed_type.value)


def check_launched_strategy(accelerator: Accelerator) -> None:
    """The run has the strategy it was launched for, with every process counted: for CPU
    processes (``--cpu``) accelerate drops DeepSpeed and FSDP without a word, and under
    DeepSpeed without GPUs it counts one process on every rank."""
    running = distributed_type(accelerator)
    for variable, asked in _LAUNCHED.items():
        if os.environ.get(variable, "").lower() == "true" and running != asked:
            raise InputError(f"the launch config asks for {asked} ({variable}=true) but "
                             f"accelerate runs {running}: it drops {asked} for CPU processes "
                             "(--cpu, use_cpu: true, ACCELERATE_USE_CPU); launch on GPUs, or "
                             f"without {asked} (configs/accelerate/ddp.yaml)")
    if torch.distributed.is_initialized():
        launched = torch.distributed.get_world_size()
        if accelerator.num_processes != launched:
            counted = accelerator.num_processes
            raise InputError(f"accelerate counts {counted} process{'es' * (counted != 1)} but "
                             f"{launched} were launched (it runs {running} so on GPUs only); "
                             "launch on GPUs, or use configs/accelerate/ddp.yaml")


def is_deepspeed(accelerator: Accelerator) -> bool:
    from accelerate.utils import DistributedType

    return bool(accelerator.distributed_type == DistributedType.DEEPSPEED)


def is_fsdp(accelerator: Accelerator) -> bool:
    from accelerate.utils import DistributedType

    return bool(accelerator.distributed_type == DistributedType.FSDP)


def zero_stage(accelerator: Accelerator) -> int:
    """The DeepSpeed ZeRO stage (0 without DeepSpeed)."""
    if not is_deepspeed(accelerator):
        return 0
    plugin = accelerator.state.deepspeed_plugin
    return int(plugin.deepspeed_config.get("zero_optimization", {}).get("stage", 0))


def is_sharded(accelerator: Accelerator) -> bool:
    """Whether parameters are gathered collectively in forward (FSDP, ZeRO-3): then every
    process must run the same sequence of forward calls."""
    return is_fsdp(accelerator) or zero_stage(accelerator) == 3


def check_fsdp(accelerator: Accelerator, method: str) -> None:
    """FSDP must shard 500x as one unit: it hands each layer's memory keys/values to the
    decoder without passing the layer's output, where per-layer units would not gather the
    layer for the backward pass. ICAE (its base runs twice, adapter on and off) is held to
    one unit too, as per-layer units are not tested for it. The methods that train the LM
    itself (tested under both) may be wrapped layer by layer."""
    if (is_fsdp(accelerator) and accelerator.state.fsdp_plugin.auto_wrap_policy is not None
            and not training_method(method).per_layer_fsdp):
        raise InputError("FSDP config: fsdp_auto_wrap_policy must be NO_WRAP for --method "
                         f"{method} (the soft model is sharded as one unit); use "
                         "configs/accelerate/fsdp.yaml, or DeepSpeed ZeRO-3 to gather the "
                         "weights module by module (layer by layer only for "
                         f"{', '.join(PER_LAYER_FSDP)})")


def prepare_deepspeed(accelerator: Accelerator, config: TrainConfig, module: nn.Module,
                      external: list[nn.Parameter]) -> None:
    """Fill the DeepSpeed config's gradient clipping from the run and register parameters
    that a module's forward reads although another module owns them (ZeRO-3)."""
    if not is_deepspeed(accelerator):
        return
    ds_config = accelerator.state.deepspeed_plugin.deepspeed_config
    clipping = ds_config.get("gradient_clipping", "auto")
    if clipping == "auto":
        ds_config["gradient_clipping"] = config.max_grad_norm
    elif float(clipping) != config.max_grad_norm:
        raise InputError(f"DeepSpeed config: gradient_clipping is {clipping} but "
                         f"--max-grad-norm is {config.max_grad_norm}; set it to \"auto\"")
    if zero_stage(accelerator) == 3:
        import deepspeed

        for parameter in external:
            deepspeed.zero.register_external_parameter(module, parameter)


@contextlib.contextmanager
def writable(*parameters: torch.Tensor) -> Iterator[None]:
    """Whole ``parameters`` for an in-place change on the first process, handed back to
    every process afterwards (under ZeRO-3 a parameter is partitioned and empty at rest)."""
    if not any(hasattr(parameter, "ds_id") for parameter in parameters):
        yield
        return
    import deepspeed

    with deepspeed.zero.GatheredParameters(list(parameters), modifier_rank=0):
        yield


@contextlib.contextmanager
def without_zero3_init(accelerator: Accelerator) -> Iterator[None]:
    """A context in which ``from_pretrained`` loads whole weights on this process alone (the
    main process's evaluation export), even under ZeRO-3."""
    if not is_deepspeed(accelerator):
        yield
        return
    from transformers.integrations.deepspeed import unset_hf_deepspeed_config

    unset_hf_deepspeed_config()  # type: ignore[no-untyped-call]
    try:
        yield
    finally:
        accelerator.state.deepspeed_plugin.set_deepspeed_weakref()


def gathered_trainable_state(accelerator: Accelerator, model: nn.Module
                             ) -> dict[str, torch.Tensor]:
    """Full CPU copies of every trainable parameter of the prepared ``model`` by name (names
    as in the unwrapped module, each parameter once: see :func:`trained_names`). Every
    process must call this; only the main process gets the tensors (the others get an empty
    dict)."""
    if zero_stage(accelerator) == 3:
        return _gathered_zero3(accelerator, model)
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    inner = accelerator.unwrap_model(model) if not is_fsdp(accelerator) else model
    options = StateDictOptions(full_state_dict=True, cpu_offload=True,
                               ignore_frozen_params=True)
    state = get_model_state_dict(inner, options=options)
    if not accelerator.is_main_process:
        return {}
    trained = trained_names(inner)
    return {clean_name(key): value.detach().cpu().clone() for key, value in state.items()
            if isinstance(value, torch.Tensor) and clean_name(key) in trained}


def trained_names(model: nn.Module) -> set[str]:
    """The names of the trainable parameters of ``model``, one per parameter.

    A state dict lists a tensor under every name it is reachable by, so a model that ties its
    output embedding to its input embedding holds it twice (``lm_head.weight`` beside
    ``model.embed_tokens.weight``), and ``ignore_frozen_params`` drops only the first name
    of a frozen one. ``named_parameters`` names each parameter once (by the module that
    registers it first), so a tied tensor is gathered, saved and loaded under that name."""
    return {clean_name(name) for name, parameter in model.named_parameters()
            if parameter.requires_grad}


def _gathered_zero3(accelerator: Accelerator, model: nn.Module) -> dict[str, torch.Tensor]:
    import deepspeed

    inner = accelerator.unwrap_model(model)
    named = [(name, p) for name, p in inner.named_parameters() if p.requires_grad]
    with deepspeed.zero.GatheredParameters([p for _, p in named], modifier_rank=None):
        if not accelerator.is_main_process:
            return {}
        return {name: p.detach().cpu().clone() for name, p in named}


def clean_name(name: str) -> str:
    """A parameter name without the wrappers' prefixes (DDP, FSDP1, torch.compile)."""
    for wrapper in ("_fsdp_wrapped_module.", "_orig_mod.", "_checkpoint_wrapped_module."):
        name = name.replace(wrapper, "")
    return name.removeprefix("module.")
