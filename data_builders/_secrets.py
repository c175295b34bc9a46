"""Keep secrets (API keys) out of every message, log line and output file.

A command registers each secret once, as soon as it reads it; :func:`mask_secrets` is the one
function that hides them, applied where messages and stored answers are built, and by
:func:`masked_output` to everything written to stdout and stderr (logs, tracebacks, server
error bodies that echo the key).
"""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO
from urllib.parse import quote

MASK = "***"
# Shorter values are placeholders (a server without authentication), not secrets; masking
# them would garble every message that happens to contain those characters.
MIN_SECRET_LENGTH = 6

_forms: set[str] = set()


def register_secret(value: str) -> None:
    """Mask ``value`` (and its URL- and JSON-escaped forms) from now on."""
    if len(value) < MIN_SECRET_LENGTH:
        return
    _forms.update({value, quote(value, safe=""), json.dumps(value)[1:-1]})


def mask_secrets(text: str) -> str:
    """``text`` with every registered secret replaced by ``***``."""
    for form in sorted(_forms, key=len, reverse=True):
        if form in text:
            text = text.replace(form, MASK)
    return text


class MaskedTextStream(io.TextIOBase):
    """A text stream that masks secrets line by line before passing text on.

    Text is held until a line ends (``\\n`` or ``\\r``) so that a secret written in pieces is
    still seen whole; :meth:`close_line` writes out what is left.
    """

    def __init__(self, target: TextIO) -> None:
        super().__init__()
        self.target = target
        self._pending = ""

    def write(self, text: str) -> int:
        self._pending += text
        cut = max(self._pending.rfind("\n"), self._pending.rfind("\r")) + 1
        if cut:
            self.target.write(mask_secrets(self._pending[:cut]))
            self._pending = self._pending[cut:]
        return len(text)

    def flush(self) -> None:
        self.target.flush()

    def close_line(self) -> None:
        """Write out text still waiting for its line end."""
        if self._pending:
            self.target.write(mask_secrets(self._pending))
            self._pending = ""
        self.target.flush()

    def isatty(self) -> bool:
        return self.target.isatty()

    def writable(self) -> bool:
        return True

    @property
    def encoding(self) -> str:  # type: ignore[override]  # read-only in io.TextIOBase
        return getattr(self.target, "encoding", None) or "utf-8"


@contextmanager
def masked_output() -> Iterator[None]:
    """Route ``sys.stdout`` and ``sys.stderr`` through :class:`MaskedTextStream`."""
    saved = sys.stdout, sys.stderr
    out, err = MaskedTextStream(saved[0]), MaskedTextStream(saved[1])
    sys.stdout, sys.stderr = out, err  # type: ignore[assignment]
    try:
        yield
    finally:
        out.close_line()
        err.close_line()
        sys.stdout, sys.stderr = saved
