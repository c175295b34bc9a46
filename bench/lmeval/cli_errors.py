"""One-line errors under lm-eval's command line.

The project's own errors for bad input (a benchmark that is not prepared, a hub id that
cannot be loaded, an unknown compressor), lm-eval's "Tasks not found" (with where the
compressbench tasks are listed) and a hub load of lm-eval's own backends that failed (with
how to give local folders) end with one line ``error: ...`` on stderr.
``COMPRESSBENCH_DEBUG=1`` shows the traceback instead. Other exceptions keep their traceback.
"""

from __future__ import annotations

import sys
from types import TracebackType

from bench.lmeval.adapter import is_unknown_task_error
from bench.substrate.errors import InputError, debug_requested, one_line

__all__ = ["HUB_HINT", "TASKS_HINT", "install_excepthook", "user_facing"]

TASKS_HINT = "`python -m bench tasks` lists the compressbench tasks and the data each needs"
HUB_HINT = "offline? pass local folders in --model_args (pretrained=..., tokenizer=...)"
_PROJECT_PACKAGES = ("bench.", "data_builders.", "leaderboard.")
_INPUT_KINDS = (ValueError, OSError, LookupError)


def user_facing(error: BaseException) -> BaseException | None:
    """The error to show as one line, or None when it deserves its traceback."""
    if is_unknown_task_error(error):
        return InputError(one_line(error), hint=TASKS_HINT)
    if isinstance(error, _INPUT_KINDS) and type(error).__module__.startswith(_PROJECT_PACKAGES):
        return error
    if isinstance(error, ValueError) and _raised_in_project(error):
        return error  # the project reports bad input as ValueError with a one-line message
    if isinstance(error, OSError) and _raised_by_the_hub_client(error):
        # lm-eval's own backends (--model hf) loading a hub id that the hub cannot give
        first_line = str(error).strip().splitlines()[0].rstrip(".") if str(error).strip() else ""
        return InputError(f"could not load from the Hugging Face hub: {first_line}",
                          hint=HUB_HINT)
    return None


def _raised_in_project(error: BaseException) -> bool:
    """Whether the innermost frame of ``error``'s traceback is the project's code."""
    traceback = error.__traceback__
    if traceback is None:
        return False
    while traceback.tb_next is not None:
        traceback = traceback.tb_next
    module = str(traceback.tb_frame.f_globals.get("__name__", ""))
    return module.startswith(_PROJECT_PACKAGES)


def _raised_by_the_hub_client(error: BaseException) -> bool:
    cause: BaseException | None = error
    while cause is not None:
        if type(cause).__module__.startswith("huggingface_hub"):
            return True
        cause = cause.__cause__ or cause.__context__
    return False


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
