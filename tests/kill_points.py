"""Interrupting a writer at every write step (the ``COMPRESSBENCH_TEST_KILL_AFTER_WRITES``
hook of :mod:`bench.substrate.atomic`) and checking what it left.

The writer runs in a forked child, so that the libraries the parent already imported cost
nothing per run; one test per command also runs the real command line in a subprocess.
:func:`fail_in_staging` instead makes the writer fail in-process (a full disk, a Ctrl-C).
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from bench.substrate.atomic import KILL_AFTER_WRITES_ENV

Snapshot = dict[str, bytes]


def run_forked(main: Callable[[Sequence[str]], int], argv: Sequence[str],
               kill_after: int | None) -> int | None:
    """``main(argv)`` in a forked child killed after ``kill_after`` writes (None: never).

    Returns the child's exit status, or None when the hook killed it.
    """
    pid = os.fork()
    if pid == 0:  # the child: never returns into the test
        code = 70
        try:
            if kill_after is None:
                os.environ.pop(KILL_AFTER_WRITES_ENV, None)
            else:
                os.environ[KILL_AFTER_WRITES_ENV] = str(kill_after)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            code = main(list(argv))
        except BaseException:  # any failure becomes an exit status for the parent
            code = 71
        finally:
            sys.stdout.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        assert os.WTERMSIG(status) == signal.SIGKILL, f"child died of signal {status}"
        return None
    return os.WEXITSTATUS(status)


def fail_in_staging(monkeypatch: pytest.MonkeyPatch, error: BaseException) -> None:
    """Make moving a written file into a staging folder (see :mod:`bench.substrate.atomic`)
    raise ``error``, as a full disk or a Ctrl-C would while the new output is being written."""
    replace = os.replace

    def failing(source: str | Path, target: str | Path, **kwargs: Any) -> None:
        if ".staging-" in os.fspath(target):
            raise error
        replace(source, target, **kwargs)

    monkeypatch.setattr(os, "replace", failing)


def run_in_process(main: Callable[[Sequence[str]], int], argv: Sequence[str]) -> int:
    """``main(argv)``, failing the test (instead of ending the session) when an interrupt
    escapes it."""
    try:
        return main(list(argv))
    except KeyboardInterrupt:
        pytest.fail("KeyboardInterrupt escaped the command")


def snapshot(folder: Path, skip: Sequence[str] = ()) -> Snapshot | None:
    """Every file under ``folder`` (relative path -> bytes), or None when it is missing."""
    if not folder.is_dir():
        return None
    return {
        path.relative_to(folder).as_posix(): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.relative_to(folder).parts[0] not in skip
    }


def leftovers(folder: Path) -> list[str]:
    """Hidden siblings of ``folder`` named after it (staging folders of killed runs)."""
    return sorted(p.name for p in folder.parent.glob(f".{folder.name}.*"))


def kill_sweep(
    run_new: Callable[[int | None], int | None],
    target: Path,
    old: Snapshot,
    new: Snapshot,
    reset: Callable[[], None],
    check: Callable[[], object],
    skip: Sequence[str] = (),
    limit: int = 80,
) -> list[str]:
    """Kill ``run_new`` after 1, 2, ... writes until it completes.

    After every kill ``target`` must hold exactly the ``old`` or the ``new`` files, and
    ``check`` (a reader) must accept it; ``reset`` puts the old folder back when the new one
    is in place. Returns the state seen after each kill ("old"/"new").
    """
    seen: list[str] = []
    for kill_after in range(1, limit):
        code = run_new(kill_after)
        state = snapshot(target, skip)
        assert state in (old, new), f"killed after {kill_after} writes: a mixed folder"
        check()
        if code is not None:
            assert code == 0, f"the run without a kill ended with status {code}"
            assert state == new
            return seen
        seen.append("old" if state == old else "new")
        if state == new:
            reset()
    raise AssertionError(f"the run did not finish within {limit} writes")
