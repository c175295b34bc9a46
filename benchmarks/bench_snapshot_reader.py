"""Bulk-snapshot reading speed: the builder's reader against merely parsing the lines as JSON.

Generates a synthetic ``arxiv-metadata-oai-snapshot`` file (plain and gzip) in a temporary
folder, then, for each, times reading the lines only, parsing every line with ``json.loads``
(standard library) and with ``orjson.loads``, and the builder's reader
(``data_builders.arxiv.sources.iter_snapshot``: JSON, v1 date, cleaning, one ``Paper`` per
record). Every method is run once to warm up, then ``--rounds`` times in turn (the order
rotating from round to round); the median rate (records per CPU second of the process) is
reported, with the reader's rate as a share of each JSON parser's. Peak memory is measured in
one more pass per method with tracemalloc (Python allocations during the pass: flat in the
number of records for a streaming reader).

    python benchmarks/bench_snapshot_reader.py --records 1000000 [--rounds 5]
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import random
import statistics
import tempfile
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import orjson

from data_builders.arxiv.sources import iter_snapshot

WORDS = [
    "model", "data", "learning", "language", "network", "training", "method", "results",
    "attention", "token", "sequence", "context", "memory", "compression", "retrieval",
    "benchmark", "corpus", "encoder",
]


def synthetic_record(index: int, abstract: str) -> dict[str, object]:
    """One snapshot-format record: wrapped title and abstract, two versions."""
    return {
        "id": f"{2000 + index // 100000}.{index % 100000:05d}",
        "submitter": "A. Author",
        "authors": "A. Author, B. Author",
        "title": f"Paper {index}\n  about things",
        "comments": None,
        "journal-ref": None,
        "doi": None,
        "report-no": None,
        "categories": "cs.CL cs.LG",
        "license": None,
        "abstract": f"  {abstract} {index}\n",
        "versions": [
            {"version": "v1", "created": "Mon, 2 Apr 2007 19:18:42 GMT"},
            {"version": "v2", "created": "Tue, 3 Apr 2007 19:18:42 GMT"},
        ],
        "update_date": "2007-04-03",
        "authors_parsed": [["Author", "A.", ""]],
    }


def write_snapshot(path: Path, records: int, seed: int = 0) -> None:
    """Write ``records`` snapshot-format lines (abstracts of ~150 words) to ``path``."""
    rng = random.Random(seed)
    abstracts = [" ".join(rng.choice(WORDS) for _ in range(150)) for _ in range(997)]
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt", encoding="utf-8") as handle:  # type: ignore[operator]
        for i in range(records):
            handle.write(json.dumps(synthetic_record(i, abstracts[i % 997])) + "\n")


def _binary_lines(path: Path) -> gzip.GzipFile | io.BufferedReader:
    return gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb")


def plain_lines(path: Path) -> int:
    """Lines read (bytes), nothing else."""
    with _binary_lines(path) as handle:
        return sum(1 for _ in handle)


def stdlib_json(path: Path) -> int:
    """Lines parsed by ``json.loads``."""
    with _binary_lines(path) as handle:
        return sum(1 for line in handle if json.loads(line))


def orjson_parse(path: Path) -> int:
    """Lines parsed by ``orjson.loads``."""
    with _binary_lines(path) as handle:
        return sum(1 for line in handle if orjson.loads(line))


def reader(path: Path) -> int:
    """Papers from the builder's reader."""
    return sum(1 for _ in iter_snapshot(path, skip_bad=False, counts=Counter()))


METHODS: dict[str, Callable[[Path], int]] = {
    "plain lines": plain_lines,
    "json.loads": stdlib_json,
    "orjson.loads": orjson_parse,
    "iter_snapshot": reader,
}


def timed(function: Callable[[Path], int], path: Path) -> tuple[int, float]:
    """(records, CPU seconds of this process) of one pass: other load on the machine, which
    stretches wall-clock time, does not skew the comparison."""
    start = time.process_time()
    count = function(path)
    return count, time.process_time() - start


def peak_mib(function: Callable[[Path], int], path: Path) -> float:
    """Peak MiB of Python allocations during one pass."""
    tracemalloc.start()
    try:
        function(path)
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def measure_file(path: Path, rounds: int) -> dict[str, dict[str, float]]:
    """Median records/s and peak MiB of every method on ``path`` (alternated, warmed up)."""
    names = list(METHODS)
    for name in names:
        METHODS[name](path)
    rates: dict[str, list[float]] = {name: [] for name in names}
    counts: dict[str, int] = {}
    for round_index in range(rounds):
        for offset in range(len(names)):
            name = names[(round_index + offset) % len(names)]
            counts[name], seconds = timed(METHODS[name], path)
            rates[name].append(counts[name] / seconds)
    return {name: {"records": counts[name], "rate": statistics.median(rates[name]),
                   "peak_mib": peak_mib(METHODS[name], path)} for name in names}


def print_rows(name: str, rows: dict[str, dict[str, float]]) -> None:
    """One line per method, then the reader's share of each JSON parser's rate."""
    for method, row in rows.items():
        print(f"{name:18} {method:14} {int(row['records']):9d} {row['rate']:11.0f} "
              f"{row['peak_mib']:9.2f}")
    reading = rows["iter_snapshot"]["rate"]
    print(f"{name:18} iter_snapshot at {reading / rows['json.loads']['rate']:.0%} of the "
          f"json.loads rate, {reading / rows['orjson.loads']['rate']:.0%} of orjson.loads")


def main(argv: list[str] | None = None) -> None:
    """Generate the files, run every measurement and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000, help="records to generate")
    parser.add_argument("--rounds", type=int, default=5,
                        help="timed passes per method and file (the median is reported)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        print(f"{'file':18} {'method':14} {'records':>9} {'records/s':>11} {'peak MiB':>9}")
        for name in ("snapshot.json", "snapshot.json.gz"):
            path = Path(folder) / name
            write_snapshot(path, args.records)
            print_rows(name, measure_file(path, args.rounds))
        print(f"records/s: per CPU second, median of {args.rounds} alternated passes after a "
              "warm-up; peak = tracemalloc peak of Python allocations during one more pass.")


if __name__ == "__main__":
    main()
