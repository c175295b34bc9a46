"""``python -m bench.build_arxiv``: build the date-split Arxiv Corpus."""

from __future__ import annotations

import argparse
import logging
import math
from collections.abc import Callable, Sequence
from pathlib import Path

from bench.substrate.errors import InputError, add_debug_flag, run_cli
from bench.substrate.help import HelpFormatter
from data_builders.arxiv.api import DEFAULT_API_URL, ApiFetchError, ApiSettings
from data_builders.arxiv.build import build
from data_builders.arxiv.config import BuildConfig
from data_builders.arxiv.records import parse_cli_date
from data_builders.arxiv.sources import BadRecordError
from data_builders.arxiv.splits import Windows

DEFAULT_TIMEOUT = ApiSettings.timeout_seconds
DEFAULT_REFRESH_HOURS = ApiSettings.refresh_after_hours


def _date(value: str) -> object:
    try:
        return parse_cli_date(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def _int_list(value: str) -> tuple[int, ...]:
    try:
        numbers = tuple(int(part) for part in value.split(",") if part.strip())
    except ValueError as error:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {value!r}"
        ) from error
    if not numbers or min(numbers) <= 0:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {value!r}")
    return tuple(sorted(set(numbers)))


def _number(
    kind: type[int] | type[float], low: float, *, above: bool = False, infinite: bool = False
) -> Callable[[str], int | float]:
    """An argparse type: a number ``>= low`` (``> low`` with ``above``), finite unless
    ``infinite``."""

    def parse(value: str) -> int | float:
        try:
            number = kind(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {value!r}") from None
        if math.isnan(number) or (math.isinf(number) and not infinite):
            raise argparse.ArgumentTypeError(f"expected a finite number, got {value!r}")
        if number < low or (above and number == low):
            bound = ">" if above else ">="
            raise argparse.ArgumentTypeError(f"expected a number {bound} {low:g}, got {value!r}")
        return number

    return parse


def _add_api_arguments(p: argparse.ArgumentParser) -> None:
    api = p.add_argument_group("arXiv API (--source api)")
    api.add_argument(
        "--api-url",
        default=DEFAULT_API_URL,
        help=f"arXiv query API endpoint (default {DEFAULT_API_URL}); for mirrors/tests",
    )
    api.add_argument(
        "--api-delay",
        type=_number(float, 0),
        default=3.0,
        help="seconds between API requests (arXiv asks for 3; default 3)",
    )
    api.add_argument(
        "--api-page-size",
        type=_number(int, 1),
        default=100,
        help="results per API page (the API serves at most 2000; default 100)",
    )
    api.add_argument(
        "--api-timeout",
        type=_number(float, 0, above=True),
        default=DEFAULT_TIMEOUT,
        help="seconds a request may wait for the server (to connect, for each part of "
        "the answer and for the whole page); a request that takes longer is retried "
        f"(default {DEFAULT_TIMEOUT:g})",
    )
    api.add_argument(
        "--api-retries",
        type=_number(int, 0),
        default=5,
        help="retries of a failed page (an HTTP error, a timeout, a page that is empty, "
        "cut off or not an Atom feed) before giving up with exit status 1 (default 5)",
    )
    api.add_argument(
        "--api-backoff",
        type=_number(float, 0),
        default=10.0,
        help="first retry wait in seconds, doubled after each failure (default 10)",
    )
    api.add_argument(
        "--api-refresh-after",
        type=_number(float, 0, infinite=True),
        default=DEFAULT_REFRESH_HOURS,
        help="hours after which a query whose date window is still open (no --before, or "
        "one less than a week before the fetch) is fetched again on a rerun; 0: every "
        f"run, inf: never (default {DEFAULT_REFRESH_HOURS:g})",
    )
    api.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="where API results are cached; a failed or interrupted download resumes "
        "from them on the next run (default OUT/.cache)",
    )


def make_parser() -> argparse.ArgumentParser:
    """The argument parser (every flag documented in ``--help``)."""
    p = argparse.ArgumentParser(
        prog="python -m bench.build_arxiv",
        formatter_class=HelpFormatter,
        description="Build the Arxiv Corpus: train = papers submitted before --train-before; "
        "dev/test = papers submitted on/after --after (and before --before). The FIRST "
        "version's submission date decides the split. Writes train/dev/test.parquet, "
        "test_len{L}.parquet, README.md and manifest.json into --out.",
    )
    p.add_argument(
        "--after",
        type=_date,
        required=True,
        help="first submission date of dev/test, inclusive (YYYY-MM or YYYY-MM-DD)",
    )
    p.add_argument(
        "--before", type=_date, default=None, help="end of dev/test, exclusive (default: no end)"
    )
    p.add_argument(
        "--train-before",
        type=_date,
        default=parse_cli_date("2023-07"),
        help="train = papers submitted before this date (default 2023-07)",
    )
    p.add_argument(
        "--train-after",
        type=_date,
        default=None,
        help="optional start of train, inclusive (limits API downloads; default: none, from "
        "the earliest paper)",
    )
    p.add_argument(
        "--categories",
        default="",
        help="comma-separated arXiv categories, e.g. cs.CL,cs.LG (default: all)",
    )
    p.add_argument(
        "--source",
        choices=("api", "snapshot", "jsonl"),
        default="api",
        help="api: the arXiv query API; snapshot: the Kaggle "
        "arxiv-metadata-oai-snapshot.json (plain or gzip); jsonl: records with a "
        "'published' v1 timestamp (plain or gzip)",
    )
    p.add_argument("--input", type=Path, default=None,
                   help="input file for snapshot/jsonl (default: none; needed by those sources)")
    p.add_argument(
        "--skip-bad",
        action="store_true",
        help="skip and count malformed input lines instead of failing on the first",
    )
    _add_api_arguments(p)
    p.add_argument(
        "--tokenizer",
        default="gpt2",
        help="Hugging Face tokenizer name or local path for n_tokens and the "
        "length groups (default gpt2, a hub id: offline, give a local tokenizer folder)",
    )
    p.add_argument(
        "--lengths",
        type=_int_list,
        default=(96, 192, 288, 384, 480),
        help="regeneration group lengths in tokens (default 96,192,288,384,480)",
    )
    p.add_argument("--dev-size", type=int, default=3000, help="dev papers (default 3000)")
    p.add_argument("--test-size", type=int, default=2500, help="test papers (default 2500)")
    p.add_argument("--seed", type=int, default=0, help="seed of the dev/test selection")
    p.add_argument(
        "--ngram",
        type=int,
        default=13,
        help="word n-gram size of the contamination audit (default 13)",
    )
    p.add_argument(
        "--overlap-threshold",
        type=float,
        default=0.0,
        help="remove dev/test texts whose share of n-grams found in train exceeds "
        "this (default 0: any shared n-gram)",
    )
    p.add_argument(
        "--keep-overlap",
        action="store_true",
        help="report overlapping dev/test texts but keep them",
    )
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    add_debug_flag(p)
    return p


def config_from_args(args: argparse.Namespace) -> BuildConfig:
    """Turn parsed arguments into a :class:`BuildConfig` (validating dates and sizes)."""
    if args.dev_size < 0 or args.test_size <= 0:
        raise InputError("--test-size must be positive and --dev-size not negative")
    if args.source != "api" and args.input is None:
        raise InputError(f"--source {args.source} needs --input PATH")
    api = None
    if args.source == "api":
        api = ApiSettings(
            cache_dir=args.cache_dir or args.out / ".cache",
            url=args.api_url,
            delay_seconds=args.api_delay,
            page_size=args.api_page_size,
            retries=args.api_retries,
            backoff_seconds=args.api_backoff,
            timeout_seconds=args.api_timeout,
            refresh_after_hours=args.api_refresh_after,
        )
    return BuildConfig(
        windows=Windows(
            train_before=args.train_before,
            after=args.after,
            train_after=args.train_after,
            before=args.before,
        ),
        source=args.source,
        out=args.out,
        tokenizer=args.tokenizer,
        input=args.input,
        api=api,
        categories=tuple(c.strip() for c in args.categories.split(",") if c.strip()),
        lengths=args.lengths,
        dev_size=args.dev_size,
        test_size=args.test_size,
        seed=args.seed,
        ngram=args.ngram,
        overlap_threshold=args.overlap_threshold,
        keep_overlap=args.keep_overlap,
        skip_bad=args.skip_bad,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (0 ok, 2 bad input or arguments, 1 API failure).

    Errors end in one line on stderr; ``--debug`` (or ``COMPRESSBENCH_DEBUG=1``) adds the
    traceback.
    """
    return run_cli(_run, argv, failures=(ApiFetchError, OSError))


def _hint(error: BadRecordError) -> str:
    if error.field == "<file>":
        return "copy or download the file again, or pass --skip-bad to keep the lines before it"
    return "fix or remove that line, or pass --skip-bad to skip and count bad lines"


def _run(argv: Sequence[str]) -> int:
    args = make_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    config = config_from_args(args)
    try:
        result = build(config)
    except BadRecordError as error:
        raise InputError(error.problem, error.path, error.line, error.field,
                         _hint(error)) from error
    for name in sorted(result.rows):
        print(f"{name}: {result.rows[name]} rows")
    print(f"wrote {config.out}")
    return 0
