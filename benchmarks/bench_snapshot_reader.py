"""Bulk-snapshot reading speed: the streaming reader vs plain line reading, and peak memory.

Generates a synthetic ``arxiv-metadata-oai-snapshot`` file (plain and gzip) in a temporary
folder, then times, for each: reading the lines only, ``json.loads`` of every line, and the
builder's reader (``data_builders.arxiv.sources.iter_snapshot``: JSON, v1 date, cleaning).
Peak memory is measured with tracemalloc (Python allocations during the pass).

    python benchmarks/bench_snapshot_reader.py --records 1000000
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import tempfile
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from data_builders._io import open_text
from data_builders.arxiv.sources import iter_snapshot

WORDS = [
    "model",
    "data",
    "learning",
    "language",
    "network",
    "training",
    "method",
    "results",
    "attention",
    "token",
    "sequence",
    "context",
    "memory",
    "compression",
    "retrieval",
    "benchmark",
    "corpus",
    "encoder",
]


def write_snapshot(path: Path, records: int, seed: int = 0) -> None:
    """Write ``records`` snapshot-format lines (abstracts of ~150 words) to ``path``."""
    rng = random.Random(seed)
    abstracts = [" ".join(rng.choice(WORDS) for _ in range(150)) for _ in range(997)]
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt", encoding="utf-8") as handle:  # type: ignore[operator]
        for i in range(records):
            abstract = f"{abstracts[i % 997]} {i}"
            record = {
                "id": f"{2000 + i // 100000}.{i % 100000:05d}",
                "submitter": "A. Author",
                "authors": "A. Author, B. Author",
                "title": f"Paper {i}\n  about things",
                "comments": None,
                "journal-ref": None,
                "doi": None,
                "report-no": None,
                "categories": "cs.CL cs.LG",
                "license": None,
                "abstract": f"  {abstract}\n",
                "versions": [
                    {"version": "v1", "created": "Mon, 2 Apr 2007 19:18:42 GMT"},
                    {"version": "v2", "created": "Tue, 3 Apr 2007 19:18:42 GMT"},
                ],
                "update_date": "2007-04-03",
                "authors_parsed": [["Author", "A.", ""]],
            }
            handle.write(json.dumps(record) + "\n")


def plain_lines(path: Path) -> int:
    with open_text(path) as handle:
        return sum(1 for _ in handle)


def json_lines(path: Path) -> int:
    with open_text(path) as handle:
        return sum(1 for line in handle if json.loads(line))


def reader(path: Path) -> int:
    return sum(1 for _ in iter_snapshot(path, skip_bad=False, counts=Counter()))


def measure(function: Callable[[Path], int], path: Path) -> tuple[int, float, float]:
    """(records, seconds, peak MiB of Python allocations)."""
    tracemalloc.start()
    start = time.perf_counter()
    count = function(path)
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return count, seconds, peak


def main(argv: list[str] | None = None) -> None:
    """Generate the files, run every measurement and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000, help="records to generate")
    parser.add_argument(
        "--no-tracemalloc-timing",
        action="store_true",
        help="time a second pass without tracemalloc (it slows Python code)",
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        rows = []
        for name in ("snapshot.json", "snapshot.json.gz"):
            path = Path(folder) / name
            write_snapshot(path, args.records)
            uncompressed_mb = (
                path.stat().st_size
                if name.endswith(".json")
                else (Path(folder) / "snapshot.json").stat().st_size
            ) / 1e6
            for label, function in (
                ("plain lines", plain_lines),
                ("json.loads", json_lines),
                ("iter_snapshot", reader),
            ):
                count, seconds, peak = measure(function, path)
                if args.no_tracemalloc_timing:
                    start = time.perf_counter()
                    function(path)
                    seconds = time.perf_counter() - start
                rows.append(
                    (name, label, count, seconds, uncompressed_mb / seconds, count / seconds, peak)
                )
        print(
            f"{'file':18} {'method':14} {'records':>9} {'s':>7} {'MB/s':>8} "
            f"{'records/s':>10} {'peak MiB':>9}"
        )
        for name, label, count, seconds, mbs, rps, peak in rows:
            print(
                f"{name:18} {label:14} {count:9d} {seconds:7.2f} {mbs:8.1f} {rps:10.0f} {peak:9.2f}"
            )
        print("MB/s counts uncompressed bytes; peak = tracemalloc peak during the pass.")


if __name__ == "__main__":
    main()
