"""The manifest of an output folder: what wrote it, the command that rebuilds it, and the
size and SHA-256 of every file in it.

Writers call :func:`write_manifest` last, inside the staging folder of
:func:`bench.substrate.atomic.atomic_directory`. Readers call :func:`verify_folder`, which
refuses a folder without a manifest, with a listed file missing or with a file whose hash
differs, in one line naming the folder, the problem and the command that rebuilds it. A folder that
passed is remembered for the process, keyed by the path, size, mtime and inode of the
manifest and of every listed file, so repeated reads cost a few ``stat`` calls.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.substrate.atomic import atomic_write_json
from bench.substrate.errors import InputError
from bench.substrate.hashing import sha256_file

__all__ = [
    "MANIFEST_NAME",
    "FolderCheckError",
    "file_entries",
    "fill_rebuild",
    "installed_versions",
    "listed_files",
    "verify_folder",
    "verify_if_built",
    "write_manifest",
]

MANIFEST_NAME = "manifest.json"

_Signature = tuple[tuple[str, int, int, int, int], ...]
_verified: dict[Path, tuple[_Signature, dict[str, Any]]] = {}


class FolderCheckError(InputError):
    """A prepared or built folder that does not match its manifest."""

    def __init__(self, folder: Path, problem: str, rebuild: str) -> None:
        super().__init__(f"{folder}: {problem}; rebuild it with: {rebuild}")
        self.folder = folder
        self.problem = problem
        self.rebuild = rebuild


def installed_versions(names: Iterable[str], missing: str) -> dict[str, str]:
    """Python's version and the installed version of each package of ``names`` (``missing``
    for one that is not installed), as manifests record them."""
    versions = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = missing
    return versions


def _hash(path: Path, memo: dict[tuple[int, int], str]) -> str:
    """SHA-256 of ``path``; hard links of one file are hashed once."""
    stat = path.stat()
    key = (stat.st_dev, stat.st_ino)
    if key not in memo:
        memo[key] = sha256_file(path)
    return memo[key]


def file_entries(folder: Path) -> dict[str, dict[str, Any]]:
    """``{relative path: {"bytes", "sha256"}}`` of every file under ``folder`` but the manifest."""
    memo: dict[tuple[int, int], str] = {}
    entries: dict[str, dict[str, Any]] = {}
    for path in sorted(folder.rglob("*")):
        name = path.relative_to(folder).as_posix()
        if name == MANIFEST_NAME or not path.is_file() or path.is_symlink():
            continue
        entries[name] = {"bytes": path.stat().st_size, "sha256": _hash(path, memo)}
    return entries


def write_manifest(folder: Path, manifest: dict[str, Any], rebuild: str) -> dict[str, Any]:
    """Write ``manifest.json`` with ``rebuild`` and the list of every other file; returns it.

    Call it after every other file of the folder is written. ``rebuild`` names the output
    location as ``{folder}`` or ``{parent}`` (see :func:`fill_rebuild`).
    """
    full = {**manifest, "rebuild": rebuild, "files": file_entries(folder)}
    atomic_write_json(folder / MANIFEST_NAME, full)
    return full


def listed_files(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The files a manifest lists: ``files``, or the ``output``/``outputs`` of older ones."""
    if isinstance(manifest.get("files"), dict):
        return dict(manifest["files"])
    output = manifest.get("output")
    if isinstance(output, dict) and "file" in output:
        return {str(output["file"]): {"sha256": output.get("sha256")}}
    outputs = manifest.get("outputs")
    if isinstance(outputs, dict):
        return {str(name): dict(entry) for name, entry in outputs.items()}
    return {}


def _signature(folder: Path, names: Iterable[str]) -> _Signature:
    signature = []
    for name in (MANIFEST_NAME, *sorted(names)):
        try:
            stat = (folder / name).stat()
        except OSError:
            return ()
        signature.append((name, stat.st_size, stat.st_mtime_ns, stat.st_ino, stat.st_dev))
    return tuple(signature)


def fill_rebuild(command: str, folder: Path) -> str:
    """``command`` with ``{folder}`` and ``{parent}`` replaced by where ``folder`` is.

    Manifests store the rebuild command with these fields instead of the output path, so
    that equal builds into different folders give byte-identical manifests.
    """
    return command.replace("{folder}", shlex.quote(str(folder))).replace(
        "{parent}", shlex.quote(str(folder.parent)))


def _read_manifest(folder: Path, rebuild: str) -> dict[str, Any]:
    path = folder / MANIFEST_NAME
    if not path.is_file():
        raise FolderCheckError(folder, f"no {MANIFEST_NAME} (an incomplete or foreign folder)",
                               rebuild)
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise FolderCheckError(
            folder, f"{MANIFEST_NAME} is unreadable ({error})", rebuild) from error
    if not isinstance(manifest, dict):
        raise FolderCheckError(folder, f"{MANIFEST_NAME} is not a JSON object", rebuild)
    return manifest


def _check_files(folder: Path, files: dict[str, dict[str, Any]], rebuild: str) -> None:
    memo: dict[tuple[int, int], str] = {}
    for name, entry in sorted(files.items()):
        path = folder / name
        if not path.is_file():
            raise FolderCheckError(folder, f"{name} is listed in {MANIFEST_NAME} but missing",
                                   rebuild)
        size = path.stat().st_size
        if "bytes" in entry and entry["bytes"] != size:
            raise FolderCheckError(
                folder, f"{name} has {size} bytes, {MANIFEST_NAME} lists {entry['bytes']}",
                rebuild)
        digest = _hash(path, memo)
        if digest != entry.get("sha256"):
            raise FolderCheckError(
                folder, f"{name} does not match {MANIFEST_NAME} (sha256 {digest[:12]}..., "
                f"listed {str(entry.get('sha256'))[:12]}...)", rebuild)


def verify_folder(folder: Path, rebuild: str, required: Iterable[str] = ()) -> dict[str, Any]:
    """Check ``folder`` against its manifest and return the manifest.

    ``rebuild`` is the command shown when the manifest cannot tell its own (``{folder}`` and
    ``{parent}`` are filled in, see :func:`fill_rebuild`); ``required``
    are files the caller reads, which the manifest must list. Raises
    :class:`FolderCheckError`.
    """
    folder = Path(os.path.abspath(folder))
    required = tuple(required)
    cached = _verified.get(folder)
    if cached is not None:
        files = listed_files(cached[1])
        if cached[0] and set(required) <= set(files) and _signature(folder, files) == cached[0]:
            return cached[1]
    manifest = _read_manifest(folder, fill_rebuild(rebuild, folder))
    rebuild = fill_rebuild(str(manifest.get("rebuild") or rebuild), folder)
    files = listed_files(manifest)
    if not files:
        raise FolderCheckError(folder, f"{MANIFEST_NAME} lists no files", rebuild)
    for name in required:
        if name not in files:
            raise FolderCheckError(folder, f"{MANIFEST_NAME} does not list {name}", rebuild)
    signature = _signature(folder, files)
    _check_files(folder, files, rebuild)
    _verified[folder] = (signature, manifest)
    return manifest


def verify_if_built(folder: Path, rebuild: str, markers: Iterable[str] = ("README.md",)
                    ) -> dict[str, Any] | None:
    """Verify ``folder`` when it is one this project wrote; None for a plain folder of files.

    A folder with ``manifest.json`` is verified; one with a card (``markers``) but no
    manifest is refused as incomplete; any other folder is somebody's own data.
    """
    folder = Path(folder)
    if (folder / MANIFEST_NAME).exists():
        return verify_folder(folder, rebuild)
    card = next((name for name in markers if (folder / name).exists()), None)
    if card is not None:
        folder = Path(os.path.abspath(folder))
        raise FolderCheckError(folder, f"has a {card} card but no {MANIFEST_NAME} (an "
                               "incomplete build)", fill_rebuild(rebuild, folder))
    return None
