"""``python -m bench`` (installed as the console script ``compressbench``): ``eval`` (lm-eval
with the compressbench models and tasks), ``tasks`` (list them), ``demo`` and ``sweep``."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from bench.substrate.errors import (
    CompressbenchError,
    InputError,
    add_debug_flag,
    one_line,
    run_cli,
)
from bench.substrate.help import HelpFormatter, RawHelpFormatter

_HELP_FLAGS = ("-h", "--help")
_PROJECT_PACKAGES = ("bench", "data_builders", "leaderboard")


def _program() -> str:
    name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return "compressbench" if name == "compressbench" else "python -m bench"


def _eval(argv: Sequence[str]) -> int:
    """Run the lm-eval CLI with the ``compressed`` models and ``compressed_*`` tasks.

    lm-eval reports bad arguments as ``ValueError``: one raised outside the project's code
    becomes an :class:`InputError` (one line); one raised by the project's code that is not a
    project error is a bug and keeps its traceback.
    """
    if any(flag in argv for flag in _HELP_FLAGS) and argv[:1] != ["ls"]:
        from bench.lmeval.eval_help import eval_help

        sys.stdout.write(eval_help(_program()))
        return 0
    from bench.lmeval.cli_errors import user_facing
    from bench.lmeval.plugin import register

    register()
    from bench.lmeval.adapter import run_cli as run_lm_eval_cli

    try:
        run_lm_eval_cli([argument for argument in argv if argument != "--debug"])
    except ValueError as error:
        shown = user_facing(error)
        if isinstance(shown, InputError) and shown is not error:
            raise shown from error
        if isinstance(error, CompressbenchError) or _raised_in_project(error):
            raise  # a project error is one line; any other ValueError of the project is a bug
        raise InputError(one_line(error)) from error  # lm-eval refusing its arguments
    return 0


def _raised_in_project(error: BaseException) -> bool:
    """Whether the innermost frame of ``error``'s traceback is the project's code."""
    traceback = error.__traceback__
    while traceback is not None and traceback.tb_next is not None:
        traceback = traceback.tb_next
    module = "" if traceback is None else str(traceback.tb_frame.f_globals.get("__name__", ""))
    return module.split(".")[0] in _PROJECT_PACKAGES


def _parser() -> argparse.ArgumentParser:
    program = _program()
    parser = argparse.ArgumentParser(
        prog=program, formatter_class=HelpFormatter,
        description="compressbench: benchmark harness for LLM prompt compression. "
                    "`python -m bench` and the console script `compressbench` are the same "
                    "command.",
    )
    add_debug_flag(parser)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser(
        "eval", add_help=False,
        help=f"lm-eval with the compressed models and tasks registered; takes lm_eval's flags "
             f"({program} eval --help explains the models, the compressors and their options)")
    tasks = commands.add_parser(
        "tasks", formatter_class=HelpFormatter,
        help="list the compressbench lm-eval tasks and whether their data is prepared",
        description="List the compressbench lm-eval tasks and groups, the prepared benchmark "
                    "each task reads and whether the data directory holds it.")
    tasks.add_argument("--data", type=Path, default=None,
                       help="data directory to check (default: $COMPRESSBENCH_DATA or the "
                            "user cache directory)")
    tasks.add_argument("--write", action="store_true",
                       help="instead of listing, write the task folder's YAML files from the "
                            "benchmarks and metrics declared in bench/specs")
    from bench.demo import add_arguments

    demo = commands.add_parser(
        "demo", formatter_class=HelpFormatter,
        help="offline end-to-end demo: bundled data, a tiny local model, several "
             "compressors, lm-eval results and the leaderboard",
        description="Offline end-to-end demo on bundled data: prepares the benchmarks with a "
                    "tiny locally built model, evaluates several compressors through lm-eval "
                    "and builds the leaderboard; prints where each part is written.")
    add_arguments(demo)
    from bench.sweep.cli import SWEEP_DESCRIPTION, sweep_example
    from bench.sweep.cli import add_arguments as add_sweep_arguments

    sweep = commands.add_parser(
        "sweep", formatter_class=RawHelpFormatter,
        help="several compressors and option values through lm-eval in one process "
             "(resumable), then the leaderboard",
        description=SWEEP_DESCRIPTION, epilog=sweep_example(program))
    add_debug_flag(sweep)
    add_sweep_arguments(sweep)
    return parser


def _run(argv: Sequence[str]) -> int:
    arguments = list(argv)
    command = [argument for argument in arguments if argument != "--debug"][:1]
    if command == ["eval"]:
        return _eval(arguments[arguments.index("eval") + 1:])
    if not command:  # no command: what there is to run
        _parser().print_help()
        return 0
    options = _parser().parse_args(arguments)
    if options.command == "tasks" and options.write:
        from bench.lmeval.task_files import write_task_folder

        print(write_task_folder())
        return 0
    if options.command == "tasks":
        from bench.lmeval.task_list import format_task_list

        print(format_task_list(options.data))
        return 0
    if options.command == "sweep":
        from bench.sweep.cli import run_command

        return run_command(options)
    from bench.demo import run_demo

    return run_demo(options)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m bench`` and ``compressbench``; bad input is one line."""
    return run_cli(_run, argv)


if __name__ == "__main__":
    sys.exit(main())
