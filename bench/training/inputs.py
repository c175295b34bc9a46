"""What a run reads, identified by content: the base model, the data, the dev file and the
trained weights it starts from.

A local file is identified by its sha256, a local folder by the sha256 over the relative
names and sha256 of its files (hidden ones left out), a hub model by the commit it was loaded
at. A resumed run may find its inputs at other paths, but with the same content; every
checkpoint and the final export record the identities.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.substrate.errors import InputError
from bench.substrate.hashing import sha256_file

if TYPE_CHECKING:
    from bench.training.config import TrainConfig

INPUT_FLAGS = {"base": "--base", "data": "--data", "dev": "--dev", "init_from": "--init-from"}
"""The settings that name an input, and their flags."""

Identity = dict[str, str]
"""``{"path": given, "sha256": digest}`` or, for a hub model, ``{"path": given, "commit":
hash}``."""


def input_identities(config: TrainConfig) -> dict[str, Identity | None]:
    """The identity of every input of ``config`` (None for an input it does not name)."""
    return {name: identity(getattr(config, name), config.revision if name == "base" else None)
            for name in INPUT_FLAGS}


def identity(given: str | None, revision: str | None = None) -> Identity | None:
    """The identity of a local path, or of a hub model (``revision``: the one to load)."""
    if not given:
        return None
    path = Path(given).expanduser()
    if path.exists():
        return {"path": given, "sha256": content_digest(path)}
    return {"path": given, "commit": hub_commit(given, revision)}


def content_digest(path: Path) -> str:
    """sha256 of a file; of a folder, over its files' relative names and sha256."""
    if path.is_file():
        return sha256_file(path)
    digest = hashlib.sha256()
    for name in _visible_files(path):
        digest.update(f"{name}\0{sha256_file(path / name)}\n".encode())
    return digest.hexdigest()


def _visible_files(folder: Path) -> list[str]:
    """Relative POSIX names of the files under ``folder``, leaving out hidden entries."""
    names = []
    for root, folders, files in os.walk(folder):
        folders[:] = [name for name in folders if not name.startswith(".")]
        relative = Path(root).relative_to(folder)
        names += [(relative / name).as_posix() for name in files if not name.startswith(".")]
    return sorted(names)


def hub_commit(name: str, revision: str | None) -> str:
    """The commit of hub model ``name`` at ``revision`` (its config is fetched if needed)."""
    from huggingface_hub import hf_hub_download

    return Path(hf_hub_download(name, "config.json", revision=revision)).parent.name


def _content(value: Identity | None) -> str | None:
    return None if value is None else value.get("sha256") or value.get("commit")


def _shown(value: Identity | None) -> str:
    if value is None:
        return "none"
    kind = "sha256" if "sha256" in value else "commit"
    return f"{value.get('path')!r} ({kind} {str(_content(value))[:12]})"


def check_same_inputs(where: Path, recorded: Any, current: dict[str, Identity | None]) -> None:
    """Refuse to resume from ``where`` (a checkpoint's state file recording ``recorded``)
    with inputs of other content than it was trained on."""
    if not isinstance(recorded, dict):
        raise InputError(f"{where}: records no content hashes of the run's inputs (written by "
                         "an older version); use another --out")
    for name, flag in INPUT_FLAGS.items():
        old, new = recorded.get(name), current[name]
        if old is not None and not isinstance(old, dict):
            old = {"path": str(old), "sha256": "?"}
        if _content(old) != _content(new):
            raise InputError(f"{where}: trained with {flag}={_shown(old)}, this run has "
                             f"{_shown(new)}; resume with the same settings or use another "
                             "--out")
