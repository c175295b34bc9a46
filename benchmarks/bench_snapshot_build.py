"""Whole-corpus builds from synthetic bulk snapshots: peak memory and records per second.

For each size, generates a synthetic ``arxiv-metadata-oai-snapshot`` file (papers from 2007
to 2024 with wrapped titles and abstracts, a few with several versions, repeated records and
copied abstracts), then runs ``python -m bench.build_arxiv --source snapshot`` on it in a
fresh process and reports that process's peak resident memory (``ru_maxrss``), its wall time
and records per second, and the size of the output. Memory that stays flat as the snapshot
grows means the build streams the train split instead of holding it.

    python benchmarks/bench_snapshot_build.py --tokenizer ../shared/data/gpt2_tokenizer \\
        [--sizes 100000 1000000] [--with-full]   # --with-full adds 2,500,000 records

The dev/test window (2024-01 to 2024-06) holds about 3% of the papers whatever the size;
everything before 2023-07 is train.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO / ".." / "shared" / "data"
FULL_SNAPSHOT = 2_500_000
FIRST_DAY = date(2007, 4, 1)
DAYS = (date(2024, 7, 1) - FIRST_DAY).days
CATEGORIES = ("cs.CL", "cs.LG", "cs.AI", "hep-ph", "math.CO", "astro-ph.GA", "q-bio.NC")
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def _created(day: date) -> str:
    return f"{WEEKDAYS[day.weekday()]}, {day.day} {MONTHS[day.month - 1]} {day.year} 10:00:00 GMT"


def _wrapped(words: list[str], width: int = 78) -> str:
    """Words joined into lines of at most ``width`` characters, as the snapshot wraps them."""
    lines, line = [], ""
    for word in words:
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return "\n".join([*lines, line])


def synthetic_paper(index: int, rng: random.Random, vocabulary: list[str]) -> dict[str, Any]:
    """One snapshot record; its v1 date spreads the papers evenly over 2007-2024."""
    day = FIRST_DAY + timedelta(days=rng.randrange(DAYS))
    words = [rng.choice(vocabulary) for _ in range(rng.randrange(60, 200))]
    versions = [{"version": "v1", "created": _created(day)}]
    if rng.random() < 0.3:
        versions.append({"version": "v2", "created": _created(day + timedelta(days=40))})
    return {
        "id": f"{day.year % 100:02d}{day.month:02d}.{index:07d}",
        "submitter": "A. Author",
        "authors": "A. Author, B. Author",
        "title": _wrapped([rng.choice(vocabulary) for _ in range(rng.randrange(5, 18))], 60),
        "comments": None,
        "journal-ref": None,
        "doi": None,
        "report-no": None,
        "categories": " ".join(rng.sample(CATEGORIES, rng.randrange(1, 3))),
        "license": None,
        "abstract": "  " + _wrapped(words) + "\n",
        "versions": versions,
        "update_date": (day + timedelta(days=40)).isoformat(),
        "authors_parsed": [["Author", "A.", ""], ["Author", "B.", ""]],
    }


def write_snapshot(path: Path, records: int, seed: int = 0) -> None:
    """``records`` lines; about 0.2% repeat an earlier paper (a later version or a copied
    abstract), which the build merges or removes."""
    rng = random.Random(seed)
    vocabulary = [f"w{rng.getrandbits(40):x}"[: rng.randrange(3, 11)] for _ in range(20_000)]
    recent: list[dict[str, Any]] = []
    with path.open("w", encoding="utf-8") as handle:
        for index in range(records):
            record = synthetic_paper(index, rng, vocabulary)
            if recent and rng.random() < 0.001:
                earlier = rng.choice(recent)
                record = {**earlier, "versions": [*earlier["versions"],
                          {"version": "v9", "created": earlier["versions"][0]["created"]}]}
            elif recent and rng.random() < 0.001:
                record["abstract"] = rng.choice(recent)["abstract"]
            recent = [*recent[-999:], record] if index % 97 == 0 else recent
            handle.write(json.dumps(record) + "\n")


def build_arguments(snapshot: Path, out: Path, tokenizer: str) -> list[str]:
    """The arguments of the ``python -m bench.build_arxiv`` run measured."""
    return ["--source", "snapshot", "--input", str(snapshot), "--after", "2024-01", "--before",
            "2024-06", "--train-before", "2023-07", "--tokenizer", tokenizer, "--lengths",
            "96,192", "--dev-size", "500", "--test-size", "1000", "--out", str(out)]


def measured_build(arguments: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS MiB) of ``python -m bench.build_arxiv ARGUMENTS`` run in a child
    process that reports its own peak."""
    code = ("import resource, runpy, sys; sys.argv = ['build_arxiv', *sys.argv[1:]]; "
            "status = 0\ntry:\n    runpy.run_module('bench.build_arxiv', run_name='__main__')\n"
            "except SystemExit as exit:\n    status = exit.code or 0\n"
            "print('PEAK_KIB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "
            "file=sys.stderr)\nsys.exit(status)")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code, *arguments], cwd=REPO, env=env,
                          capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"build failed ({done.returncode}): {done.stderr[-2000:]}")
    peak = next(line for line in done.stderr.splitlines() if line.startswith("PEAK_KIB"))
    return seconds, int(peak.split()[1]) / 1024


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line flags."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000],
                        help="snapshot sizes in records (default 100000 1000000)")
    parser.add_argument("--with-full", action="store_true",
                        help=f"also build a snapshot of {FULL_SNAPSHOT:,} records (the full "
                             "Kaggle file's size)")
    parser.add_argument("--tokenizer", default=str(SHARED_DATA / "gpt2_tokenizer"),
                        help="tokenizer folder or hub name for --tokenizer of the build")
    parser.add_argument("--work-dir", type=Path, default=None,
                        help="where snapshots and outputs go (default: a temporary folder)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Generate every snapshot, build it in a child process and print one line per size."""
    args = parse_args(argv)
    sizes = [*args.sizes, *([FULL_SNAPSHOT] if args.with_full else [])]
    with tempfile.TemporaryDirectory(dir=args.work_dir) as folder:
        print(f"{'records':>10} {'snapshot MB':>12} {'build s':>9} {'records/s':>10} "
              f"{'peak RSS MiB':>13} {'train rows':>11}")
        for size in sizes:
            snapshot = Path(folder) / f"snapshot_{size}.json"
            write_snapshot(snapshot, size)
            out = Path(folder) / f"corpus_{size}"
            seconds, peak = measured_build(build_arguments(snapshot, out, args.tokenizer))
            rows = json.loads((out / "manifest.json").read_text())["outputs"]
            print(f"{size:>10} {snapshot.stat().st_size / 1e6:>12.0f} {seconds:>9.1f} "
                  f"{size / seconds:>10.0f} {peak:>13.0f} "
                  f"{rows['train.parquet']['rows']:>11}", flush=True)
            snapshot.unlink()
    print("peak RSS: ru_maxrss of the build process (Python, libraries, tokenizer included).")


if __name__ == "__main__":
    main()
