"""Where prepared benchmarks live: ``$COMPRESSBENCH_DATA`` or the user cache directory."""

from __future__ import annotations

import os
from pathlib import Path

from platformdirs import user_cache_dir

DATA_ENV = "COMPRESSBENCH_DATA"


def data_root() -> Path:
    """Root of the prepared-benchmark directory (each benchmark in its own sub-folder)."""
    configured = os.environ.get(DATA_ENV)
    if configured:
        return Path(configured).expanduser()
    return Path(user_cache_dir("compressbench")) / "data"


def benchmark_dir(benchmark: str, root: Path | None = None) -> Path:
    """Folder of one prepared benchmark, e.g. ``<root>/squad``."""
    return (root or data_root()) / benchmark


class MissingBenchmarkError(FileNotFoundError):
    """A task needs a prepared benchmark that is not in the data directory."""

    def __init__(self, benchmark: str, path: Path) -> None:
        hint = (
            f"python -m bench.prepare {benchmark} --source SOURCE --out {path.parent}"
            if benchmark != "regeneration"
            else "python -m bench.prepare regeneration --source ARXIV_CORPUS_DIR "
            f"--out {path.parent}"
        )
        super().__init__(
            f"prepared benchmark {benchmark!r} not found at {path} (data directory from "
            f"${DATA_ENV} or the default cache). Prepare it with:\n  {hint}\n"
            f"or run `python -m bench demo` to prepare the bundled demo data."
        )
