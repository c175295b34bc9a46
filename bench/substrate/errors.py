"""Bad input reported as one line: ``FILE:LINE: field 'F': problem; what to do``.

The project's own errors derive from :class:`CompressbenchError`; bad input is its
:class:`InputError`. Every command of the project runs its entry point through
:func:`run_cli`: one of the project's errors, or a missing or unreadable file, ends with that
one line on stderr and exit status 2; failures the command names (a server that stays down)
end the same way with status 1, and an interrupt (Ctrl-C) with status 130. The Python
traceback is shown only with ``--debug`` (see :func:`add_debug_flag`) or
``COMPRESSBENCH_DEBUG=1``. Any other exception (a ``ValueError`` or ``KeyError`` of a bug)
keeps its traceback and Python's exit status.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

__all__ = [
    "DEBUG_ENV",
    "EXIT_FAILURE",
    "EXIT_INPUT",
    "EXIT_INTERRUPTED",
    "CompressbenchError",
    "InputError",
    "add_debug_flag",
    "debug_requested",
    "format_input_error",
    "one_line",
    "run_cli",
]

DEBUG_ENV = "COMPRESSBENCH_DEBUG"
EXIT_FAILURE = 1
EXIT_INPUT = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for Ctrl-C

_FILE_ERRORS = (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)
_TRUE = {"1", "true", "yes", "on"}


def format_input_error(
    problem: str,
    path: Path | str | None = None,
    line: int | None = None,
    field: str | None = None,
    hint: str | None = None,
) -> str:
    """``path:line: field 'field': problem; hint``, leaving out the parts that are None."""
    parts: list[str] = []
    if path is not None:
        parts.append(f"{path}:{line}" if line is not None else str(path))
    if field is not None:
        parts.append(f"field {field!r}")
    parts.append(problem)
    message = ": ".join(parts)
    return f"{message}; {hint}" if hint else message


class CompressbenchError(Exception):
    """The root of the project's own errors: a message for the person running the command.

    :func:`run_cli` shows one as one line; exceptions outside this tree are bugs.
    """


class InputError(CompressbenchError, ValueError):
    """Unusable input, located by file, line and field, with what to do about it."""

    def __init__(
        self,
        problem: str,
        path: Path | str | None = None,
        line: int | None = None,
        field: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(format_input_error(problem, path, line, field, hint))
        self.problem = problem
        self.path = None if path is None else str(path)
        self.line = line
        self.field = field
        self.hint = hint


def one_line(error: BaseException) -> str:
    """The error's message on one line (a file error names its file)."""
    if isinstance(error, OSError) and error.filename is not None and error.strerror:
        text = f"{error.filename}: {error.strerror}"
    else:
        text = str(error) or type(error).__name__
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


def debug_requested(argv: Sequence[str]) -> bool:
    """True when ``--debug`` is among the options or ``COMPRESSBENCH_DEBUG`` is set."""
    if os.environ.get(DEBUG_ENV, "").strip().lower() in _TRUE:
        return True
    options = argv[: list(argv).index("--")] if "--" in argv else argv
    return "--debug" in options


def add_debug_flag(parser: argparse.ArgumentParser) -> None:
    """Add the documented ``--debug`` flag (``run_cli`` acts on it)."""
    parser.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help=f"on an error, show the Python traceback instead of one line "
        f"(same as {DEBUG_ENV}=1)",
    )


def _report(error: BaseException, debug: bool, redact: Callable[[str], str] | None,
            line: str | None = None) -> None:
    text = "".join(traceback.format_exception(error)) if debug else ""
    text += f"error: {line or one_line(error)}\n"
    sys.stderr.write(redact(text) if redact is not None else text)


def run_cli(
    main: Callable[[Sequence[str]], int],
    argv: Sequence[str] | None = None,
    failures: tuple[type[BaseException], ...] = (),
    redact: Callable[[str], str] | None = None,
) -> int:
    """Run ``main(argv)``; the project's errors and missing files -> one line and 2, a named
    failure -> one line and 1, Ctrl-C -> one line and 130.

    ``failures`` are exceptions that are not the user's input (a server that does not
    answer; it may be a broad class such as ``OSError``: a missing file is still bad input).
    Anything else is a bug and propagates with its traceback.
    ``redact`` rewrites what is printed (e.g. masks a secret a server echoed).
    """
    args = list(sys.argv[1:] if argv is None else argv)
    debug = debug_requested(args)
    handled: tuple[type[BaseException], ...] = (CompressbenchError, *_FILE_ERRORS, *failures)
    try:
        return main(args)
    except handled as error:
        _report(error, debug, redact)
        return _exit_status(error, failures)
    except KeyboardInterrupt as error:
        _report(error, debug, redact, line="interrupted")
        return EXIT_INTERRUPTED


def _exit_status(error: BaseException, failures: tuple[type[BaseException], ...]) -> int:
    if isinstance(error, _FILE_ERRORS):
        return EXIT_INPUT
    return EXIT_FAILURE if isinstance(error, failures) else EXIT_INPUT
