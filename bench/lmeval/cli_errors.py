"""One-line errors under lm-eval's command line.

The project's own errors for bad input (a benchmark that is not prepared, a hub id that
cannot be loaded, an unknown compressor) and lm-eval's "Tasks not found" end with one line
``error: ...`` on stderr, the latter with where the compressbench tasks are listed.
``COMPRESSBENCH_DEBUG=1`` shows the traceback instead. Other exceptions keep their traceback.
"""

from __future__ import annotations

import sys
from types import TracebackType

from bench._errors import InputError, debug_requested, one_line

__all__ = ["TASKS_HINT", "install_excepthook", "user_facing"]

TASKS_HINT = "`python -m bench tasks` lists the compressbench tasks and the data each needs"
_PROJECT_PACKAGES = ("bench.", "data_builders.", "leaderboard.")
_INPUT_KINDS = (ValueError, OSError, LookupError)


def user_facing(error: BaseException) -> BaseException | None:
    """The error to show as one line, or None when it deserves its traceback."""
    if isinstance(error, ValueError) and str(error).startswith("Tasks not found"):
        return InputError(one_line(error), hint=TASKS_HINT)
    if isinstance(error, _INPUT_KINDS) and type(error).__module__.startswith(_PROJECT_PACKAGES):
        return error
    return None


def install_excepthook() -> None:
    """Make uncaught :func:`user_facing` errors one line (once per process)."""
    previous = sys.excepthook
    if getattr(previous, "_compressbench", False):
        return

    def hook(kind: type[BaseException], error: BaseException,
             traceback: TracebackType | None) -> None:
        shown = None if debug_requested([]) else user_facing(error)
        if shown is None:
            previous(kind, error, traceback)
        else:
            sys.stderr.write(f"error: {one_line(shown)}\n")

    hook._compressbench = True  # type: ignore[attr-defined]
    sys.excepthook = hook
