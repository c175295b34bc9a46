"""Where prepared benchmarks live (``$COMPRESSBENCH_DATA`` or the user cache directory), and
the checked way to reach one: a folder is used only when it matches its manifest."""

from __future__ import annotations

import os
from pathlib import Path

from platformdirs import user_cache_dir

from bench.substrate.errors import CompressbenchError
from bench.substrate.manifest import fill_rebuild, verify_folder

DATA_ENV = "COMPRESSBENCH_DATA"
CORPUS_REBUILD = (
    "python -m bench.build_arxiv --source SOURCE [--input FILE] --after YYYY-MM "
    "--tokenizer TOKENIZER --out {folder}"
)


def data_root() -> Path:
    """Root of the prepared-benchmark directory (each benchmark in its own sub-folder)."""
    configured = os.environ.get(DATA_ENV)
    if configured:
        return Path(configured).expanduser()
    return Path(user_cache_dir("compressbench")) / "data"


def benchmark_dir(benchmark: str, root: Path | None = None) -> Path:
    """Folder of one prepared benchmark, e.g. ``<root>/squad``."""
    return (root or data_root()) / benchmark


def prepare_hint(benchmark: str) -> str:
    """The command that prepares ``benchmark``, with the data directory as ``{parent}``."""
    source = "ARXIV_CORPUS_DIR" if benchmark == "regeneration" else "SOURCE"
    return (f"python -m bench.prepare {benchmark} --source {source} --tokenizer TARGET_MODEL "
            f"--out {{parent}}")


class MissingBenchmarkError(CompressbenchError, FileNotFoundError):
    """A task needs a prepared benchmark that is not in the data directory."""

    def __init__(self, benchmark: str, path: Path) -> None:
        super().__init__(
            f"prepared benchmark {benchmark!r} not found at {path} (data directory from "
            f"${DATA_ENV} or the default cache); prepare it with: "
            f"{fill_rebuild(prepare_hint(benchmark), path)} "
            f"(or point ${DATA_ENV} at a prepared data directory, e.g. the demo's: "
            f"`python -m bench demo --out DIR` prepares DIR/data)"
        )


def verified_benchmark_dir(benchmark: str, root: Path | None = None) -> Path:
    """The folder of ``benchmark`` after checking it against its manifest.

    Raises :class:`MissingBenchmarkError` when it is absent and
    :class:`bench.substrate.manifest.FolderCheckError` (with the command that rebuilds it) when
    it is incomplete or altered. The check hashes each folder once per process.
    """
    folder = benchmark_dir(benchmark, root)
    if not folder.is_dir():
        raise MissingBenchmarkError(benchmark, folder)
    verify_folder(folder, prepare_hint(benchmark), required=("test.parquet",))
    return folder
