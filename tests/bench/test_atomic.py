"""bench._atomic (atomic files and folders, the kill hook) and bench.prepare.manifest."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from bench import _atomic
from bench._atomic import (
    OutputFolderError,
    atomic_directory,
    atomic_path,
    atomic_write_text,
    clean_leftovers,
)
from bench.prepare import manifest as manifest_module
from bench.prepare.manifest import FolderCheckError, verify_folder, verify_if_built, write_manifest
from tests.kill_points import leftovers, run_forked, snapshot


@pytest.fixture
def umask_027() -> Iterator[None]:
    previous = os.umask(0o027)
    yield
    os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    return int(done.stdout)


def _fill(folder: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        atomic_write_text(folder / name, text)


def test_files_and_folders_get_umask_modes(tmp_path: Path, umask_027: None) -> None:
    atomic_write_text(tmp_path / "a.txt", "x")
    with atomic_path(tmp_path / "b.bin") as tmp:
        tmp.write_bytes(b"y")
    with atomic_directory(tmp_path / "out") as staging:
        atomic_write_text(staging / "c.txt", "z")
    assert _mode(tmp_path / "a.txt") == _mode(tmp_path / "b.bin") == 0o640
    assert _mode(tmp_path / "out" / "c.txt") == 0o640
    assert _mode(tmp_path / "out") == 0o750


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "two-renames"])
def test_folder_is_replaced_as_a_whole_and_keeps_caches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exchange: bool
) -> None:
    if not exchange:
        monkeypatch.setattr(_atomic, "_exchange", lambda first, second: False)
    out = tmp_path / "out"
    with atomic_directory(out, keep=(".cache",)) as staging:
        _fill(staging, {"a.txt": "old a", "stale.txt": "old only"})
    (out / ".cache").mkdir()
    (out / ".cache" / "entry").write_text("cached")
    with atomic_directory(out, keep=(".cache",), owned=("*.txt",)) as staging:
        assert snapshot(out, skip=(".cache",)) == {"a.txt": b"old a", "stale.txt": b"old only"}
        _fill(staging, {"a.txt": "new a"})
    assert snapshot(out) == {"a.txt": b"new a", ".cache/entry": b"cached"}
    assert leftovers(out) == []


def test_failed_block_leaves_the_folder_and_no_staging(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with atomic_directory(out) as staging:
        _fill(staging, {"a.txt": "old"})
    with pytest.raises(RuntimeError, match="boom"), atomic_directory(out) as staging:
        _fill(staging, {"a.txt": "new", "b.txt": "new"})
        raise RuntimeError("boom")
    assert snapshot(out) == {"a.txt": b"old"}
    assert leftovers(out) == []


def test_foreign_entries_are_never_replaced(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.py").write_text("mine")
    with pytest.raises(OutputFolderError, match=r"holds 'notes\.py'"), atomic_directory(
        out, owned=("*.txt", "manifest.json")
    ):
        pytest.fail("the block must not run")
    assert snapshot(out) == {"notes.py": b"mine"}
    assert leftovers(out) == []


def test_leftovers_of_dead_runs_are_cleaned_and_caches_recovered(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with atomic_directory(out) as staging:
        _fill(staging, {"a.txt": "current"})
    pid = _dead_pid()
    swapped = tmp_path / f".out.staging-{pid}-abcdefgh"  # an old folder killed mid-removal
    (swapped / ".cache").mkdir(parents=True)
    (swapped / ".cache" / "entry").write_text("cached")
    alive = tmp_path / f".out.staging-{os.getpid()}-zzzzzzzz"  # a run in progress
    alive.mkdir()
    clean_leftovers(out, keep=(".cache",))
    assert snapshot(out) == {"a.txt": b"current", ".cache/entry": b"cached"}
    assert leftovers(out) == [alive.name]


def test_folder_moved_aside_is_put_back(tmp_path: Path) -> None:
    out = tmp_path / "out"
    aside = tmp_path / f".out.old-{_dead_pid()}-abcdefgh"  # killed between the two renames
    aside.mkdir()
    (aside / "a.txt").write_text("complete")
    clean_leftovers(out)
    assert snapshot(out) == {"a.txt": b"complete"}
    assert leftovers(out) == []


def _three_files(argv: Sequence[str]) -> int:
    for name in argv:
        atomic_write_text(Path(name), name)
    return 0


def test_kill_hook_kills_after_the_configured_write(tmp_path: Path) -> None:
    names = [str(tmp_path / f"{i}.txt") for i in range(3)]
    assert run_forked(_three_files, names, kill_after=2) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["0.txt", "1.txt"]
    assert run_forked(_three_files, names, kill_after=None) == 0
    assert len(list(tmp_path.iterdir())) == 3


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
    assert manifest["files"]["data.txt"] == {"bytes": 4, "sha256": _atomic.sha256_file(
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
        return _atomic.sha256_file(path)

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
