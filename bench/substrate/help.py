"""``--help`` that shows every option's default and choices.

The formatters append ``(default: X)`` to an option whose help does not already say its
default (on/off for switches), and list the choices of an option whose metavar hides them.
An option without a default value (None) must say in its own words what happens without it.
"""

from __future__ import annotations

import argparse
from pathlib import PurePath
from typing import Any

__all__ = ["HelpFormatter", "RawHelpFormatter", "default_text"]

_SWITCHES = (argparse._StoreTrueAction, argparse._StoreFalseAction)


def default_text(value: Any) -> str:
    """A default as a user would type it (lists comma-separated, paths as written)."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, (list, tuple)):
        return ",".join(default_text(item) for item in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _described_default(action: argparse.Action) -> str | None:
    if isinstance(action, _SWITCHES):
        return "on" if isinstance(action, argparse._StoreFalseAction) else "off"
    if action.default is None or action.default is argparse.SUPPRESS:
        return None
    return default_text(action.default)


class _DefaultsMixin(argparse.HelpFormatter):
    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if not action.option_strings or action.required:
            return text
        extra: list[str] = []
        if action.choices is not None and action.metavar is not None:
            extra.append("choices: " + ", ".join(map(str, action.choices)))
        if "default" not in text.lower():
            shown = _described_default(action)
            if shown is not None:
                extra.append(f"default: {shown}")
        if not extra:
            return text
        appended = "; ".join(extra).replace("%", "%%")  # help strings are %-formatted
        return f"{text} ({appended})" if text else f"({appended})"


class HelpFormatter(_DefaultsMixin):
    """Wraps descriptions; shows defaults and hidden choices."""


class RawHelpFormatter(_DefaultsMixin, argparse.RawDescriptionHelpFormatter):
    """Keeps the description's and epilog's line breaks; shows defaults and hidden choices."""
