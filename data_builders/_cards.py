"""Helpers shared by the dataset cards and manifests."""

from __future__ import annotations

from bench.substrate.manifest import installed_versions
from data_builders import BUILDER_VERSION


def package_versions(*names: str) -> dict[str, str]:
    """Installed versions of ``names`` (``"absent"`` when not installed), Python's and the
    builders'."""
    versions = installed_versions(names, missing="absent")
    return {**versions, "compressbench-builders": BUILDER_VERSION}


def markdown_table(header: list[str], rows: list[list[object]]) -> str:
    """A GitHub-flavoured Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines.extend("| " + " | ".join(str(cell) for cell in row) + " |" for row in rows)
    return "\n".join(lines)
