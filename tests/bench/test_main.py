"""``python -m bench eval``: lm-eval's refusals of its arguments are one line, a ValueError of
the project's own code that is not a project error keeps its traceback."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

import pytest

from bench.__main__ import main as bench_main
from bench.lmeval import adapter
from bench.substrate.errors import DEBUG_ENV, EXIT_INPUT
from bench.training.example import Example


@pytest.fixture(autouse=True)
def _no_debug(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DEBUG_ENV, raising=False)
    monkeypatch.setattr(sys, "argv", list(sys.argv))  # lm-eval's command line replaces it


def test_lm_evals_refusal_of_its_arguments_is_one_line_and_exit_2(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    # Handlers that earlier tests' lm-eval runs left on the loggers write to streams pytest
    # has closed since; this run gets its own.
    for name in ("", "lm-eval", "lm_eval"):
        monkeypatch.setattr(logging.getLogger(name), "handlers", [])
    status = bench_main(["eval", "--model", "hf", "--model_args", "pretrained=unused",
                         "--tasks", "compressed_squad", "--limit", "1",
                         "--samples", '{"compressed_squad": [0]}'])
    assert status == EXIT_INPUT
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.splitlines()[-1] == "error: If --samples is not None, then --limit must be None."


def test_a_value_error_of_the_projects_code_keeps_its_traceback(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def run_with_a_bug(arguments: Sequence[str]) -> None:
        Example("context", "no such kind", "target")  # the project's own ValueError

    monkeypatch.setattr(adapter, "run_cli", run_with_a_bug)
    with pytest.raises(ValueError, match="example kind must be one of"):
        bench_main(["eval", "--model", "hf", "--tasks", "compressed_squad"])


@pytest.mark.parametrize("argv", [[], ["--debug"]])
def test_no_command_prints_the_help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    from bench.__main__ import _parser

    assert bench_main(argv) == 0
    captured = capsys.readouterr()
    assert captured.out == _parser().format_help() and captured.err == ""
