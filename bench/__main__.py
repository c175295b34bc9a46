"""``python -m bench``: ``eval`` (lm-eval with the project's models and tasks) and ``demo``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _eval(argv: Sequence[str]) -> int:
    """Run the lm-eval CLI with the ``compressed`` models and ``compressed_*`` tasks."""
    from bench.lmeval.plugin import register

    register()
    from lm_eval.__main__ import cli_evaluate

    sys.argv = ["lm_eval", *argv]
    cli_evaluate()
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="compressbench: benchmark harness for LLM prompt compression.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "eval", add_help=False,
        help="lm-eval with the compressed models and tasks registered; takes lm_eval's flags "
             "(python -m bench eval --help lists them)")
    from bench.demo import add_arguments

    add_arguments(commands.add_parser(
        "demo", help="offline end-to-end demo: bundled data, a tiny local model, several "
                     "compressors, lm-eval results and the leaderboard tables"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["eval"]:
        return _eval(arguments[1:])
    options = _parser().parse_args(arguments)
    from bench.demo import run_demo

    return run_demo(options)


if __name__ == "__main__":
    sys.exit(main())
