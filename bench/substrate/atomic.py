"""Atomic file and folder writes, and a kill switch for tests.

Files: every writer puts the data in a temporary file in the destination folder and then
``os.replace``-s it over the target, so a reader never sees a half-written file and an
interrupted run leaves the previous version intact.

Folders: :func:`atomic_directory` builds a whole output folder in a hidden staging sibling
(``.NAME.staging-PID-XXXX``) and swaps it into place in one step, so a folder holds either
its previous complete content or the new complete content, whenever the writer is killed.
Leftover siblings of a killed run are removed by the next run into the same folder. The swap
is Linux's ``renameat2(RENAME_EXCHANGE)``; where that is missing it is two renames, and a run
killed between them leaves the folder moved aside until the next run puts it back.

Written files and folders get the modes the umask allows (``0666``/``0777`` less the umask),
not the ``0600``/``0700`` of :mod:`tempfile`.

Test hook: with ``COMPRESSBENCH_TEST_KILL_AFTER_WRITES=N`` in the environment the process
sends itself ``SIGKILL`` right after its N-th write step (a file written, a folder swapped
into place, kept entries moved, an old folder removed). The tests use it to interrupt a
build at every step; it has no other use.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fnmatch
import json
import os
import re
import shutil
import signal
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from bench.substrate.errors import InputError

__all__ = [
    "KILL_AFTER_WRITES_ENV",
    "OutputFolderError",
    "atomic_directory",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "clean_leftovers",
    "file_mode",
    "link_or_copy",
    "note_write",
]

KILL_AFTER_WRITES_ENV = "COMPRESSBENCH_TEST_KILL_AFTER_WRITES"

_writes = {"pid": 0, "count": 0}


def note_write() -> None:
    """Count one write step; the test hook kills the process at the configured count."""
    if _writes["pid"] != os.getpid():  # a forked child counts its own writes
        _writes.update(pid=os.getpid(), count=0)
    _writes["count"] += 1
    limit = os.environ.get(KILL_AFTER_WRITES_ENV, "").strip()
    if limit.isdigit() and _writes["count"] >= int(limit):
        os.kill(os.getpid(), signal.SIGKILL)


def _umask() -> int:
    with contextlib.suppress(OSError), open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    current = os.umask(0o022)
    os.umask(current)
    return current


def file_mode() -> int:
    """Mode of a new file under the current umask (``0644`` with the usual ``022``)."""
    return 0o666 & ~_umask()


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` atomically.

    The caller writes the temporary file (with any library that takes a path). If the block
    raises, the temporary file is removed and ``path`` is left untouched.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, file_mode())
        with tmp.open("rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    note_write()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (fsync-ed before the rename)."""
    with atomic_path(path) as tmp, tmp.open("wb") as handle:
        handle.write(data)


def atomic_write_text(path: Path, text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically (newlines written as given)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as indented, key-sorted JSON (stable bytes for equal objects)."""
    text = json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    atomic_write_text(path, text)


def link_or_copy(source: Path, target: Path) -> None:
    """Make ``target`` a hard link to ``source`` (a copy where links are impossible), atomically."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.link")
    tmp.unlink(missing_ok=True)
    try:
        os.link(source, tmp)
    except OSError:
        shutil.copyfile(source, tmp)
        os.chmod(tmp, file_mode())
    os.replace(tmp, target)
    note_write()


class OutputFolderError(InputError):
    """The output folder exists and holds something this command did not write."""


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100
_LEFTOVER = re.compile(r"\.(?P<name>.+)\.(?P<kind>staging|old)-(?P<pid>\d+)-[^/]+")


def _exchange(first: Path, second: Path) -> bool:
    """Swap two paths in one step (Linux ``renameat2``); False where that is unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (AttributeError, OSError, TypeError):
        return False
    done = renameat2(_AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second),
                     _RENAME_EXCHANGE)
    if done == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(first), None, str(second))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _leftovers(target: Path) -> list[tuple[str, Path]]:
    """``(kind, path)`` of the staging/old siblings of ``target`` left by dead processes."""
    found = []
    for path in target.parent.glob(f".{_glob_escape(target.name)}.*-*"):
        match = _LEFTOVER.fullmatch(path.name)
        if match and match["name"] == target.name and not _alive(int(match["pid"])):
            found.append((match["kind"], path))
    return sorted(found, key=lambda item: item[1].stat().st_mtime_ns)


def _glob_escape(name: str) -> str:
    """``name`` with glob wildcards escaped."""
    return re.sub(r"([*?\[])", r"[\1]", name)


def _move_kept(source: Path, target: Path, keep: Iterable[str]) -> None:
    for name in keep:
        if (source / name).exists() and not (target / name).exists():
            os.rename(source / name, target / name)
            note_write()


def clean_leftovers(target: Path, keep: Iterable[str] = ()) -> None:
    """Remove what killed runs left beside ``target``, after recovering what must survive.

    A folder moved aside by a run killed mid-swap is put back when ``target`` is missing;
    ``keep`` entries (caches) still in a leftover are moved back into ``target``.
    """
    keep = tuple(keep)
    for kind, path in reversed(_leftovers(target)):
        if kind == "old" and not target.exists():
            os.rename(path, target)
            continue
        if target.is_dir():
            _move_kept(path, target, keep)
        shutil.rmtree(path, ignore_errors=True)


def _foreign_entry(target: Path, patterns: tuple[str, ...]) -> str | None:
    """The first entry of ``target`` that matches none of ``patterns``, if any."""
    for entry in sorted(target.iterdir()):
        if not any(fnmatch.fnmatchcase(entry.name, pattern) for pattern in patterns):
            return entry.name
    return None


def _commit(staging: Path, target: Path, keep: tuple[str, ...]) -> None:
    os.chmod(staging, 0o777 & ~_umask())
    _fsync_dir(staging)
    if not target.exists():
        os.rename(staging, target)
        note_write()
    elif _exchange(staging, target):  # staging now holds the previous folder
        note_write()
        _move_kept(staging, target, keep)
        shutil.rmtree(staging)
        note_write()
    else:
        aside = target.with_name(f".{target.name}.old-{os.getpid()}-{staging.name[-8:]}")
        os.rename(target, aside)
        note_write()
        os.rename(staging, target)
        note_write()
        _move_kept(aside, target, keep)
        shutil.rmtree(aside)
        note_write()
    _fsync_dir(target.parent)


@contextlib.contextmanager
def atomic_directory(
    target: Path,
    keep: Iterable[str] = (),
    owned: Iterable[str] = ("*",),
) -> Iterator[Path]:
    """Yield an empty staging folder that replaces ``target`` as a whole when the block ends.

    ``keep`` names entries of ``target`` (caches written there during the run) that move
    into the new folder. ``owned`` are the glob patterns of the entry names the writer
    produces: an existing ``target`` holding anything else is not replaced
    (:class:`OutputFolderError` before anything is written), so that a mistyped ``--out``
    never deletes unrelated files. If the block raises, the staging folder is removed and
    ``target`` is left as it was.
    """
    target = Path(os.path.abspath(target))
    if target.is_symlink():
        target = target.resolve()
    keep = tuple(keep)
    clean_leftovers(target, keep)
    if target.exists() and not target.is_dir():
        raise OutputFolderError(f"{target}: exists and is not a folder; choose another output")
    foreign = _foreign_entry(target, (*keep, *owned)) if target.is_dir() else None
    if foreign is not None:
        raise OutputFolderError(
            f"{target}: exists and holds {foreign!r}, which this command does not write; "
            "choose a new or empty folder, or remove it first"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.staging-{os.getpid()}-",
                                    dir=target.parent))
    try:
        yield staging
        _commit(staging, target, keep)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
