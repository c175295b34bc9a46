"""Resumable training state without pickles: tensors in safetensors, scalars in JSON.

``optimizer.safetensors`` holds the optimizer's per-parameter tensors (``state.<i>.<name>``)
and the RNG states; ``trainer_state.json`` holds the step, the micro-batch position, the
optimizer's param groups and the scheduler's scalars.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from bench._atomic import atomic_path, atomic_write_json

OPTIMIZER_FILE = "optimizer.safetensors"
STATE_FILE = "trainer_state.json"


def save_state(directory: Path, optimizer: torch.optim.Optimizer,
               scheduler: torch.optim.lr_scheduler.LRScheduler, scalars: dict[str, Any]) -> None:
    """Write optimizer, scheduler, RNG and loop state into ``directory``."""
    from safetensors.torch import save_file

    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    for index, values in state["state"].items():
        for name, value in values.items():
            tensor = value if isinstance(value, torch.Tensor) else torch.tensor(value)
            tensors[f"state.{index}.{name}"] = tensor.detach().cpu().contiguous()
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available():
        tensors["rng.cuda"] = torch.cuda.get_rng_state()
    with atomic_path(directory / OPTIMIZER_FILE) as tmp:
        save_file(tensors, str(tmp))
    scheduler_state = {k: v for k, v in scheduler.state_dict().items() if k != "lr_lambdas"}
    atomic_write_json(directory / STATE_FILE, {
        **scalars,
        "param_groups": state["param_groups"],
        "scheduler": scheduler_state,
    })


def load_state(directory: Path, optimizer: torch.optim.Optimizer,
               scheduler: torch.optim.lr_scheduler.LRScheduler) -> dict[str, Any]:
    """Restore what :func:`save_state` wrote; returns the loop scalars."""
    from safetensors.torch import load_file

    scalars: dict[str, Any] = json.loads((directory / STATE_FILE).read_text(encoding="utf-8"))
    tensors = load_file(str(directory / OPTIMIZER_FILE))
    per_param: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("state."):
            _, index, name = key.split(".", 2)
            per_param.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": per_param, "param_groups": scalars.pop("param_groups")})
    scheduler.load_state_dict({**scheduler.state_dict(), **scalars.pop("scheduler")})
    torch.set_rng_state(tensors["rng.torch"])
    if "rng.cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["rng.cuda"])
    return scalars


def latest_checkpoint(out: Path) -> Path | None:
    """The newest complete ``checkpoint-*`` directory under ``out``."""
    candidates = sorted(p for p in out.glob("checkpoint-*")
                        if p.is_dir() and (p / STATE_FILE).is_file())
    return candidates[-1] if candidates else None
