"""bench.substrate.errors: one line and exit 2 for bad input, tracebacks only when asked for."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from bench.substrate.errors import (
    DEBUG_ENV,
    EXIT_FAILURE,
    EXIT_INPUT,
    EXIT_INTERRUPTED,
    InputError,
    add_debug_flag,
    debug_requested,
    format_input_error,
    one_line,
    run_cli,
)


def test_message_names_file_line_field_and_what_to_do() -> None:
    error = InputError("not UTF-8", "data/x.jsonl", 50, "<line>", "convert the file to UTF-8")
    assert str(error) == "data/x.jsonl:50: field '<line>': not UTF-8; convert the file to UTF-8"
    assert (error.path, error.line, error.field) == ("data/x.jsonl", 50, "<line>")
    assert isinstance(error, ValueError)
    assert format_input_error("missing", field="header") == "field 'header': missing"
    assert format_input_error("bad", Path("a.json")) == "a.json: bad"


def test_one_line_joins_lines_and_names_the_missing_file(tmp_path: Path) -> None:
    assert one_line(ValueError("first\n  second\n")) == "first second"
    with pytest.raises(FileNotFoundError) as caught:
        (tmp_path / "nope.txt").open()
    assert one_line(caught.value) == f"{tmp_path / 'nope.txt'}: No such file or directory"
    assert one_line(RuntimeError()) == "RuntimeError"


def _failing(error: BaseException) -> Callable[[Sequence[str]], int]:
    def main(argv: Sequence[str]) -> int:
        raise error

    return main


def test_bad_input_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DEBUG_ENV, raising=False)
    status = run_cli(_failing(InputError("no rows", "f.jsonl", 3)), [])
    assert status == EXIT_INPUT == 2
    assert capsys.readouterr().err == "error: f.jsonl:3: no rows\n"


def test_debug_flag_and_env_show_the_traceback(capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DEBUG_ENV, raising=False)
    main = _failing(ValueError("bad value"))
    assert run_cli(main, ["x", "--debug"]) == EXIT_INPUT
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):")
    assert err.endswith("ValueError: bad value\nerror: bad value\n")
    monkeypatch.setenv(DEBUG_ENV, "1")
    assert run_cli(main, ["x"]) == EXIT_INPUT
    assert "Traceback" in capsys.readouterr().err
    monkeypatch.setenv(DEBUG_ENV, "0")
    assert not debug_requested(["--", "--debug"])
    assert debug_requested(["--debug"])


def test_failures_exit_1_but_a_missing_file_stays_bad_input(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DEBUG_ENV, raising=False)
    down = _failing(ConnectionError("server down"))
    assert run_cli(down, [], failures=(OSError,)) == EXIT_FAILURE
    assert capsys.readouterr().err == "error: server down\n"
    missing = _failing(FileNotFoundError(2, "No such file or directory", "in.jsonl"))
    assert run_cli(missing, [], failures=(OSError,)) == EXIT_INPUT
    assert capsys.readouterr().err == "error: in.jsonl: No such file or directory\n"


def test_ctrl_c_is_one_line_and_exit_130(capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DEBUG_ENV, raising=False)
    interrupted = _failing(KeyboardInterrupt())
    assert run_cli(interrupted, []) == EXIT_INTERRUPTED == 130
    assert capsys.readouterr().err == "error: interrupted\n"
    assert run_cli(interrupted, ["--debug"]) == EXIT_INTERRUPTED
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):")
    assert err.endswith("KeyboardInterrupt\nerror: interrupted\n")


def test_bugs_keep_their_traceback() -> None:
    with pytest.raises(KeyError):
        run_cli(_failing(KeyError("bug")), [])


def test_redaction_applies_to_the_line_and_the_traceback(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DEBUG_ENV, raising=False)
    main = _failing(ValueError("401: key sk-secret rejected"))
    status = run_cli(main, ["--debug"], redact=lambda t: t.replace("sk-secret", "sk-***"))
    err = capsys.readouterr().err
    assert status == EXIT_INPUT and "sk-secret" not in err and err.count("sk-***") == 2


def test_debug_flag_is_documented_and_parsed() -> None:
    parser = argparse.ArgumentParser()
    add_debug_flag(parser)
    assert "--debug" in parser.format_help() and DEBUG_ENV in parser.format_help()
    assert parser.parse_args(["--debug"]).debug is True
    assert not hasattr(parser.parse_args([]), "debug")
