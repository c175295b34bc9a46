"""Command line of the leaderboard: ``build``, ``check`` and ``export``."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from bench.substrate.atomic import atomic_write_text
from bench.substrate.errors import add_debug_flag, run_cli
from bench.substrate.help import HelpFormatter
from leaderboard._build import BuildOptions, build, read_runs
from leaderboard._check import (
    check_allowance,
    compare,
    current_entries,
    junit_xml,
    new_entries,
    read_baseline,
    report,
    write_baseline,
)
from leaderboard._errors import LeaderboardError
from leaderboard._folders import run_folder_name
from leaderboard._metrics import metric_styles
from leaderboard._results_data import FORMATS, write_export

EXIT_OK, EXIT_REGRESSION, EXIT_UNUSABLE = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m leaderboard",
        description="Leaderboard of lm-eval runs of compressbench tasks.",
        formatter_class=HelpFormatter,
    )
    add_debug_flag(parser)
    sub = parser.add_subparsers(dest="command", required=True)
    runs_help = "lm-eval output folders (searched recursively for results_*.json) or results files"

    b = sub.add_parser(
        "build",
        formatter_class=HelpFormatter,
        help="write tables, plots and index.html",
        description="Read lm-eval runs and write leaderboard.md, <table>.csv, "
        "<table>.tex, leaderboard.json and a self-contained index.html.",
    )
    add_debug_flag(b)
    b.add_argument("runs", nargs="+", type=Path, help=runs_help)
    b.add_argument("--out", type=Path, required=True, help="output folder (created if missing)")
    b.add_argument("--title", default="compressbench leaderboard", help="page and document title")
    b.add_argument(
        "--baseline-compressor",
        default="none",
        help="row that the delta table subtracts, per base model: a label as the tables show "
        "it ('truncate (rate=0.5)', 'hf (stock lm-eval)') or a compressor or lm-eval backend "
        "name ('truncate', 'hf') that selects one row (default: none)",
    )
    b.add_argument(
        "--normalise-to",
        default="none",
        help="row that the normalised table divides by, per base model, named as for "
        "--baseline-compressor (default: none; without a none row, the model's stock "
        "lm-eval run)",
    )
    b.add_argument(
        "--metric-style",
        choices=metric_styles(),
        default="squad",
        help="squad: squad_f1/squad_exact_match/rouge_l_f/bleu (default); "
        "500x: the 500xCompressor definitions f1_500x/exact_match_500x/...",
    )
    b.add_argument(
        "--max-samples",
        type=int,
        default=50,
        help="samples per row and task embedded in the page viewer (default 50)",
    )

    c = sub.add_parser(
        "check",
        formatter_class=HelpFormatter,
        help="compare runs with a committed baseline file",
        description="Exit 0 when no metric dropped by more than the tolerance, "
        "1 with a table of regressions otherwise, 2 on unusable input.",
    )
    add_debug_flag(c)
    c.add_argument("runs", nargs="+", type=Path, help=runs_help)
    c.add_argument("--baseline", type=Path, required=True, help="baseline JSON file")
    c.add_argument(
        "--tolerance",
        type=float,
        default=1.0,
        help="allowed drop in absolute points (metric x100; default 1.0)",
    )
    c.add_argument(
        "--stderr-aware",
        action="store_true",
        help="only count a drop beyond the tolerance that also exceeds z times the "
        "combined standard error of baseline and current value",
    )
    c.add_argument("--z", type=float, default=1.96, help="z for --stderr-aware (default 1.96)")
    c.add_argument(
        "--allow-missing",
        action="store_true",
        help="do not fail when a baseline metric is absent from the runs",
    )
    c.add_argument("--junit", type=Path,
                   help="also write the result as JUnit XML to this file (default: none)")
    c.add_argument(
        "--update",
        action="store_true",
        help="write the runs' metrics as the new baseline file and exit 0",
    )

    _add_export(sub, runs_help)

    f = sub.add_parser(
        "run-folder",
        formatter_class=HelpFormatter,
        help="print a run folder name for lm_eval --output_path",
        description="Print a folder name made of the base model, the compressor and its "
        "settings, for lm_eval --output_path runs/NAME/results.json (results_<date>.json and "
        "the samples then land directly in runs/NAME).",
    )
    f.add_argument("--model", default="compressed", help="lm-eval --model (default compressed)")
    f.add_argument("--model_args", required=True, help="lm-eval --model_args")
    return parser


def _add_export(sub: argparse._SubParsersAction[argparse.ArgumentParser],
                runs_help: str) -> None:
    e = sub.add_parser(
        "export",
        formatter_class=HelpFormatter,
        help="write the runs as a data set (Parquet) with an eval.yaml",
        description="Write the runs as Parquet tables (results: one row per run, task and "
        "metric; samples: one row per logged sample; runs: the results record of each run) "
        "with their schema version, an eval.yaml for the benchmark data set (the Hugging Face "
        "Hub's Eval Results convention) and a manifest. `build` reads the folder beside run "
        "folders.",
    )
    add_debug_flag(e)
    e.add_argument("runs", nargs="+", type=Path, help=runs_help + ", or exports")
    e.add_argument("--out", type=Path, required=True, help="output folder (created if missing)")
    e.add_argument("--format", choices=FORMATS, default="parquet",
                   help="parquet: the tables, eval.yaml and manifest.json; hf-dataset: the "
                   "same with a README.md data set card whose configs name the tables, ready "
                   "to upload as a Hugging Face data set (default: parquet)")
    e.add_argument("--title", default="compressbench", help="the benchmark's name in eval.yaml "
                   "and the card")
    e.add_argument("--evaluation-framework", metavar="NAME", default=None,
                   help="the evaluation_framework field of eval.yaml; the Hugging Face Hub "
                   "accepts only the frameworks it lists (EVALUATION_FRAMEWORKS in "
                   "huggingface.js packages/tasks/src/eval.ts), which do not include "
                   "compressbench or lm-eval, so it is left out unless given (default: "
                   "left out)")


def _export(args: argparse.Namespace) -> int:
    runs = read_runs(args.runs)
    for path in write_export(runs, args.runs, args.out, args.format, args.title,
                             args.evaluation_framework):
        print(path)
    return EXIT_OK


def _build(args: argparse.Namespace) -> int:
    options = BuildOptions(
        out=args.out,
        title=args.title,
        baseline_compressor=args.baseline_compressor,
        normalise_to=args.normalise_to,
        metric_style=args.metric_style,
        max_samples=args.max_samples,
    )
    for path in build(args.runs, options):
        print(path)
    return EXIT_OK


def _check(args: argparse.Namespace) -> int:
    check_allowance(args.tolerance, args.z)
    current = current_entries(read_runs(args.runs, with_samples=False))
    if not current:
        raise LeaderboardError("the runs contain no score metrics to check")
    if args.update:
        write_baseline(args.baseline, current)
        print(f"wrote {args.baseline} ({len(current)} metrics)")
        return EXIT_OK
    baseline = read_baseline(args.baseline)
    findings = compare(baseline, current, args.tolerance, args.z if args.stderr_aware else None)
    if args.allow_missing:
        findings = [f for f in findings if f.current is not None]
    print(report(findings, new_entries(baseline, current)))
    if args.junit:
        atomic_write_text(args.junit, junit_xml(findings))
    return EXIT_REGRESSION if any(f.status != "ok" for f in findings) else EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status.

    Unusable input ends in one line on stderr and status 2; ``--debug`` (or
    ``COMPRESSBENCH_DEBUG=1``) adds the traceback.
    """
    return run_cli(_run, argv)


def _run(argv: Sequence[str]) -> int:
    args = _parser().parse_args(argv)
    if args.command == "run-folder":
        print(run_folder_name(args.model, args.model_args))
        return EXIT_OK
    if args.command == "export":
        return _export(args)
    return _build(args) if args.command == "build" else _check(args)
