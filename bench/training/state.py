"""Resumable checkpoints: ``OUT/checkpoint-<step>/`` holds the training state (trained
weights, optimizer, scheduler, every process's RNG states and data position; see
:mod:`.resume`), the evaluation export (``soft_config.json`` + ``soft_weights.safetensors``)
and ``trainer_state.json`` (step, metrics history, settings, input hashes), written last.

Every process writes into ``OUT/.checkpoint-<step>.tmp``; the main process renames it into
place once all have finished, so a run killed while saving leaves no half checkpoint (stale
staging folders are removed at the next start, a failed save removes its own).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.substrate.errors import InputError
from bench.training.tensor_tree import DAMAGED_HINT, read_json

STATE_FILE = "trainer_state.json"
PREFIX = "checkpoint-"
_FIELDS = {"step": int, "history": list, "processes": int, "config": dict}


def checkpoint_dir(out: Path, step: int) -> Path:
    return out / f"{PREFIX}{step:07d}"


def staging_dir(out: Path, step: int) -> Path:
    return out / f".{PREFIX}{step:07d}.tmp"


def latest_checkpoint(out: Path) -> Path | None:
    """The newest complete ``checkpoint-*`` directory under ``out``."""
    candidates = sorted(p for p in out.glob(f"{PREFIX}*")
                        if p.is_dir() and (p / STATE_FILE).is_file())
    return candidates[-1] if candidates else None


def remove_staging(out: Path) -> None:
    """Remove staging folders left by a run that was killed while saving."""
    for stale in out.glob(f".{PREFIX}*.tmp"):
        shutil.rmtree(stale, ignore_errors=True)


def read_trainer_state(directory: Path) -> dict[str, Any]:
    """The step, history, process count and settings a checkpoint was written with."""
    path = directory / STATE_FILE
    state = read_json(path)
    if not isinstance(state, dict) or any(not isinstance(state.get(name), kind)
                                          for name, kind in _FIELDS.items()):
        raise InputError(f"not a training state (it must hold {', '.join(_FIELDS)})", path,
                         hint=DAMAGED_HINT)
    return state


@contextlib.contextmanager
def staged(out: Path, step: int, main: bool) -> Iterator[Path]:
    """The staging folder of ``checkpoint-<step>``, created and, if the block fails, removed
    by the main process."""
    staging = staging_dir(out, step)
    if main:
        staging.mkdir(parents=True, exist_ok=True)
    try:
        yield staging
    except BaseException:
        if main:
            shutil.rmtree(staging, ignore_errors=True)
        raise


def publish(staging: Path, final: Path) -> None:
    """Move a complete staging folder to its final name (replacing an older one)."""
    if final.exists():
        shutil.rmtree(final)
    os.replace(staging, final)


def prune(out: Path, keep: int) -> None:
    """Keep the newest ``keep`` checkpoints."""
    done = sorted(p for p in out.glob(f"{PREFIX}*") if p.is_dir())
    for old in done[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
