"""Helpers shared by the dataset cards and manifests."""

from __future__ import annotations

import platform
from importlib import metadata

from data_builders import BUILDER_VERSION


def package_versions(*names: str) -> dict[str, str]:
    """Installed versions of ``names`` (``"absent"`` when not installed), plus Python's."""
    versions = {"python": platform.python_version(), "compressbench-builders": BUILDER_VERSION}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


def markdown_table(header: list[str], rows: list[list[object]]) -> str:
    """A GitHub-flavoured Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines.extend("| " + " | ".join(str(cell) for cell in row) + " |" for row in rows)
    return "\n".join(lines)
