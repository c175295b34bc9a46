"""bench.substrate.errors: one line and exit 2 for bad input, tracebacks only when asked for."""

from __future__ import annotations

import argparse
import subprocess
import sys
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from bench.substrate.errors import (
    DEBUG_ENV,
    EXIT_FAILURE,
    EXIT_INPUT,
    EXIT_INTERRUPTED,
    CompressbenchError,
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
    assert isinstance(error, ValueError) and isinstance(error, CompressbenchError)
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
    main = _failing(InputError("bad value"))
    assert run_cli(main, ["x", "--debug"]) == EXIT_INPUT
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):")
    assert err.endswith("InputError: bad value\nerror: bad value\n")
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


class _UnknownName(CompressbenchError, KeyError):
    """A project error that callers also catch as ``KeyError``."""

    def __str__(self) -> str:
        return str(self.args[0])


class _ServerDown(CompressbenchError, RuntimeError):
    """A project error that a command declares a failure."""


@pytest.mark.parametrize("error", [InputError("no rows", "f.jsonl", 3),
                                   _UnknownName("f.jsonl:3: no rows"),
                                   CompressbenchError("f.jsonl:3: no rows")])
def test_every_project_error_is_one_line_and_exit_2(
        error: CompressbenchError, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DEBUG_ENV, raising=False)
    assert run_cli(_failing(error), []) == EXIT_INPUT
    assert capsys.readouterr().err == "error: f.jsonl:3: no rows\n"


def test_a_project_error_declared_a_failure_exits_1(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DEBUG_ENV, raising=False)
    assert run_cli(_failing(_ServerDown("3 requests failed")), [],
                   failures=(_ServerDown,)) == EXIT_FAILURE
    assert capsys.readouterr().err == "error: 3 requests failed\n"


@pytest.mark.parametrize("error", [
    FileNotFoundError(2, "No such file or directory", "in.jsonl"),
    PermissionError(13, "Permission denied", "in.jsonl"),
    IsADirectoryError(21, "Is a directory", "in.jsonl"),
])
def test_a_file_error_is_one_line_and_exit_2(
        error: OSError, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DEBUG_ENV, raising=False)
    assert run_cli(_failing(error), []) == EXIT_INPUT
    assert capsys.readouterr().err == f"error: in.jsonl: {error.strerror}\n"


@pytest.mark.parametrize("error", [ValueError("bug"), KeyError("bug"), TypeError("bug")])
def test_bugs_keep_their_traceback(error: Exception) -> None:
    with pytest.raises(type(error)):
        run_cli(_failing(error), [])


def test_a_bugs_value_error_shows_its_traceback_and_not_exit_2(tmp_path: Path) -> None:
    script = tmp_path / "command.py"
    script.write_text(textwrap.dedent("""
        import sys

        from bench.substrate.errors import run_cli


        def main(argv):
            return int("not a number")  # a bug, not bad input


        sys.exit(run_cli(main, []))
    """), encoding="utf-8")
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          env=env, timeout=60, check=False)
    assert done.returncode not in (0, EXIT_INPUT), done.stderr
    assert done.stderr.startswith("Traceback (most recent call last):")
    assert done.stderr.rstrip().splitlines()[-1] == (
        "ValueError: invalid literal for int() with base 10: 'not a number'")
    assert "error: " not in done.stderr


def test_redaction_applies_to_the_line_and_the_traceback(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DEBUG_ENV, raising=False)
    main = _failing(InputError("401: key sk-secret rejected"))
    status = run_cli(main, ["--debug"], redact=lambda t: t.replace("sk-secret", "sk-***"))
    err = capsys.readouterr().err
    assert status == EXIT_INPUT and "sk-secret" not in err and err.count("sk-***") == 2


def test_debug_flag_is_documented_and_parsed() -> None:
    parser = argparse.ArgumentParser()
    add_debug_flag(parser)
    assert "--debug" in parser.format_help() and DEBUG_ENV in parser.format_help()
    assert parser.parse_args(["--debug"]).debug is True
    assert not hasattr(parser.parse_args([]), "debug")
