"""bench.substrate.manifest: manifests written last, folders verified against them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench.substrate import manifest as manifest_module
from bench.substrate.atomic import atomic_write_text
from bench.substrate.hashing import sha256_file
from bench.substrate.manifest import (
    FolderCheckError,
    verify_folder,
    verify_if_built,
    write_manifest,
)


def _fill(folder: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        atomic_write_text(folder / name, text)


def _verified_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "built"
    folder.mkdir()
    _fill(folder, {"data.txt": "rows", "README.md": "card"})
    (folder / "sub").mkdir()
    os.link(folder / "data.txt", folder / "sub" / "link.txt")
    write_manifest(folder, {"builder": "tests"}, "rebuild-tool --out {folder}")
    return folder


def test_manifest_lists_every_file_and_verifies(tmp_path: Path) -> None:
    folder = _verified_folder(tmp_path)
    manifest = verify_folder(folder, "fallback", required=("data.txt",))
    assert sorted(manifest["files"]) == ["README.md", "data.txt", "sub/link.txt"]
    assert manifest["files"]["data.txt"] == {"bytes": 4, "sha256": sha256_file(
        folder / "data.txt")}
    with pytest.raises(FolderCheckError, match=r"does not list other\.txt"):
        verify_folder(folder, "fallback", required=("other.txt",))


@pytest.mark.parametrize(
    ("damage", "problem", "command"),
    [
        (lambda f: (f / "data.txt").write_text("ROWS"), "data.txt does not match manifest.json",
         "rebuild-tool"),
        (lambda f: (f / "data.txt").write_text("more rows"), "data.txt has 9 bytes",
         "rebuild-tool"),
        (lambda f: (f / "sub" / "link.txt").unlink(), "sub/link.txt is listed in manifest.json",
         "rebuild-tool"),
        (lambda f: (f / "manifest.json").write_text("{"), "manifest.json is unreadable",
         "fallback"),
        (lambda f: (f / "manifest.json").unlink(), "no manifest.json", "fallback"),
    ],
    ids=["tampered", "resized", "missing", "corrupt-manifest", "no-manifest"],
)
def test_damaged_folder_is_refused_with_the_rebuild_command(
    tmp_path: Path, damage: object, problem: str, command: str
) -> None:
    folder = _verified_folder(tmp_path)
    verify_folder(folder, "fallback --out {folder}")
    assert callable(damage)
    damage(folder)
    with pytest.raises(FolderCheckError) as info:
        verify_folder(folder, "fallback --out {folder}")
    message = str(info.value)
    assert message.startswith(f"{folder}: ") and "\n" not in message
    assert problem in message
    assert message.endswith(f"; rebuild it with: {command} --out {folder}")


def test_verification_hashes_once_per_folder_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _verified_folder(tmp_path)
    hashed: list[Path] = []

    def counting(path: Path) -> str:
        hashed.append(path)
        return sha256_file(path)

    monkeypatch.setattr(manifest_module, "sha256_file", counting)
    for _ in range(3):
        verify_folder(folder, "fallback")
    assert len(hashed) == 2  # data.txt and its hard link hashed once, README.md once
    (folder / "README.md").write_text("a new card")
    with pytest.raises(FolderCheckError, match=r"README\.md has 10 bytes"):
        verify_folder(folder, "fallback")


def test_verify_if_built_tells_plain_folders_from_broken_builds(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "train.parquet").write_bytes(b"user data")
    assert verify_if_built(plain, "fallback") is None
    (plain / "README.md").write_text("card")
    with pytest.raises(FolderCheckError, match=r"README\.md card but no manifest\.json"):
        verify_if_built(plain, "fallback")
    write_manifest(plain, {"builder": "tests"}, "tool")
    assert verify_if_built(plain, "fallback") is not None
