"""Hints in lm-eval-side errors are right: the suggested commands work, and ``python -m lm_eval``
loads the plug-in like ``lm_eval``."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from bench.demo import bundled_path
from bench.lmeval import plugin
from bench.lmeval.cli_errors import TASKS_HINT
from bench.prepare.cli import main as prepare_main
from bench.prepare.data_dir import MissingBenchmarkError, verified_benchmark_dir

REPO = Path(__file__).resolve().parents[3]


def test_the_missing_benchmark_command_prepares_it(tmp_path: Path, tiny_model_dir: Path):
    root = tmp_path / "data"
    with pytest.raises(MissingBenchmarkError) as caught:
        verified_benchmark_dir("squad", root)
    message = str(caught.value)
    command = re.search(r"prepare it with: (python -m bench\.prepare [^(]*?) \(", message)
    assert command is not None, message
    words = shlex.split(command.group(1))
    assert words[:3] == ["python", "-m", "bench.prepare"]
    filled = [{"SOURCE": str(bundled_path("demo_qa.jsonl")),
               "TARGET_MODEL": str(tiny_model_dir)}.get(word, word) for word in words[3:]]
    assert prepare_main([*filled, "--quiet"]) == 0
    assert verified_benchmark_dir("squad", root) == root / "squad"
    assert "python -m bench demo --out DIR` prepares DIR/data" in message


@pytest.mark.parametrize(("orig_argv", "expected"), [
    (["python", "-m", "lm_eval", "--tasks", "x"], True),
    (["python", "-u", "-X", "utf8", "-m", "lm_eval"], True),
    (["python", "-mlm_eval"], True),
    (["python", "-m", "lm_eval.__main__"], True),
    (["python", "-m", "bench", "eval"], False),
    (["python", "script.py", "-m", "lm_eval"], False),
    (["python", "-c", "pass", "-m", "lm_eval"], False),
])
def test_python_dash_m_lm_eval_is_recognised(monkeypatch: pytest.MonkeyPatch,
                                             orig_argv: list[str], expected: bool):
    monkeypatch.setattr(sys, "orig_argv", orig_argv)
    assert plugin._running_lm_eval_module() is expected


@pytest.mark.slow
def test_python_dash_m_lm_eval_loads_the_plugin_and_names_where_tasks_are_listed(
        tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if k not in ("COMPRESSBENCH_LM_EVAL",
                                                           "COMPRESSBENCH_DEBUG")}
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    done = subprocess.run(
        [sys.executable, "-m", "lm_eval", "run", "--tasks", "compressed_sqad", "--model", "hf",
         "--model_args", "pretrained=unused"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == (
        f"error: Tasks not found: compressed_sqad; {TASKS_HINT}")
    assert "Traceback" not in done.stderr


def test_the_tasks_hint_names_a_command_that_exists(capsys: pytest.CaptureFixture[str]):
    command = re.search(r"`python -m bench (\w+)`", TASKS_HINT)
    assert command is not None
    from bench.__main__ import main

    assert main([command.group(1)]) == 0
    assert "compressed_squad" in capsys.readouterr().out


def _raised_from(error: BaseException, cause: BaseException) -> BaseException:
    try:
        raise error from cause
    except BaseException as raised:
        return raised


def test_a_failed_hub_load_of_lm_evals_backends_is_one_line_naming_model_args():
    from huggingface_hub.errors import LocalEntryNotFoundError

    from bench.lmeval.cli_errors import HUB_HINT, user_facing

    cause = LocalEntryNotFoundError("Cannot find the requested files in the disk cache")
    error = _raised_from(OSError("We couldn't connect to the hub.\nCheck your connection."), cause)
    shown = user_facing(error)
    assert shown is not None
    assert str(shown) == ("could not load from the Hugging Face hub: We couldn't connect to "
                          f"the hub; {HUB_HINT}")
    assert user_facing(OSError("disk full")) is None
    missing = MissingBenchmarkError("squad", Path("/nowhere/squad"))
    assert user_facing(missing) is missing


def test_a_missing_regeneration_length_names_the_command_that_adds_it(data_env: Path):
    from bench.lmeval import task_functions
    from bench.substrate.errors import InputError

    with pytest.raises(InputError) as caught:
        task_functions.load_regeneration(length=480)
    hint = caught.value.hint or ""
    assert hint.startswith("prepare them with: python -m bench.prepare regeneration ")
    assert "--lengths 96,480 " in hint and f"--out {data_env};" in hint
    assert "--tokenizer TARGET_MODEL" in hint


def test_a_value_error_raised_by_the_project_is_one_line_and_others_keep_their_traceback():
    from bench.compressors import parse_options
    from bench.lmeval.cli_errors import user_facing

    @dataclass(frozen=True)
    class _Options:
        rate: float = 0.5

    with pytest.raises(ValueError) as ours:
        parse_options(_Options, {"speed": 1}, "probe")
    assert user_facing(ours.value) is ours.value
    with pytest.raises(ValueError) as theirs:
        int("not a number")
    assert user_facing(theirs.value) is None
