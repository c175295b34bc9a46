"""Resumable checkpoints: ``OUT/checkpoint-<step>/`` holds the accelerate state
(``accelerator.save_state``: trained weights, optimizer, scheduler, every process's RNG
states, the data position), the evaluation export (``soft_config.json`` +
``soft_weights.safetensors``) and ``trainer_state.json`` (step, metrics history), written last.

Every process writes into ``OUT/.checkpoint-<step>.tmp``; the main process renames it into
place once all have finished, so a run killed while saving leaves no half checkpoint (stale
staging folders are removed at the next start).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

STATE_FILE = "trainer_state.json"
PREFIX = "checkpoint-"


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
    state: dict[str, Any] = json.loads((directory / STATE_FILE).read_text(encoding="utf-8"))
    return state


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
