"""bench.substrate.atomic: atomic files and folders, the kill hook."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from bench.substrate import atomic as atomic_module
from bench.substrate.atomic import (
    OutputFolderError,
    atomic_directory,
    atomic_path,
    atomic_write_text,
    clean_leftovers,
)
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
        monkeypatch.setattr(atomic_module, "_exchange", lambda first, second: False)
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
