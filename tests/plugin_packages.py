"""Installs a one-module package that registers a plug-in through an entry-point group."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest


def install_plugin(tmp_path_factory: pytest.TempPathFactory, module: str, source: str,
                   group: str, entry: str) -> Path:
    """The folder (for PYTHONPATH) where package ``module`` is installed, with the entry point
    ``entry`` of ``group`` (``"NAME = module:OBJECT"``)."""
    folder = tmp_path_factory.mktemp(f"{module}-src")
    (folder / f"{module}.py").write_text(source, encoding="utf-8")
    (folder / "pyproject.toml").write_text(textwrap.dedent(f"""
        [build-system]
        requires = ["setuptools>=61"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "{module.replace("_", "-")}"
        version = "0.1"

        [tool.setuptools]
        py-modules = ["{module}"]

        [project.entry-points."{group}"]
        {entry}
    """), encoding="utf-8")
    site = tmp_path_factory.mktemp(f"{module}-site")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation",
         "--no-index", "--quiet", "--target", str(site), str(folder)],
        capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return site
