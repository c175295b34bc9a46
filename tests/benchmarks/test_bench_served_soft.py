"""The served-soft benchmark's command line and report (the benchmark itself needs a GPU and
vLLM; nothing here starts it)."""

from __future__ import annotations

import pytest

from bench.substrate.errors import InputError
from tests.benchmarks.conftest import load_script

served_soft = load_script("bench_served_soft")
REQUIRED = ["--data", "d", "--pretrained", "mistralai/Mistral-7B-Instruct-v0.2",
            "--compressor", "icae"]


def test_help_names_both_ways_to_reach_a_server(capsys):
    with pytest.raises(SystemExit) as done:
        served_soft.parser().parse_args(["--help"])
    assert done.value.code == 0
    shown = capsys.readouterr().out
    assert "--url" in shown and "--start-vllm" in shown and "--enable-prompt-embeds" in shown


def test_a_server_must_be_named_or_started(capsys):
    with pytest.raises(SystemExit) as done:
        served_soft.parser().parse_args(REQUIRED)
    assert done.value.code == 2 and "--url" in capsys.readouterr().err


def test_the_started_server_takes_prompt_embeddings_in_the_runs_dtype():
    args = served_soft.parser().parse_args([*REQUIRED, "--start-vllm", "--dtype", "float16",
                                            "--port", "8123", "--max-model-len", "4096"])
    command = served_soft.vllm_command(args)
    assert command[:3] == ["vllm", "serve", "mistralai/Mistral-7B-Instruct-v0.2"]
    assert "--enable-prompt-embeds" in command
    for flag, value in (("--dtype", "float16"), ("--port", "8123"), ("--max-model-len", "4096")):
        assert command[command.index(flag) + 1] == value


def test_options_and_the_report():
    assert served_soft.parse_options("variant=v2, checkpoint=a=b") == {
        "variant": "v2", "checkpoint": "a=b"}
    with pytest.raises(InputError, match="KEY=VALUE"):
        served_soft.parse_options("variant")
    summary = served_soft.RunSummary
    local = summary({("t", 0): "a", ("t", 1): "b"}, 4.0, 1.0)
    remote = summary({("t", 0): "a", ("t", 1): "c"}, 1.0, 1.0, sent_bytes=3000.0)
    assert served_soft.equal_answers(local, remote) == 1
    report = served_soft.table(local, remote)
    assert "1/2" in report and "1.5 kB" in report and "4.00x" in report
