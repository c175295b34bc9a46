"""``--help`` of every command shows each option's default and choices; ``bench.train``'s
stages show their presets; ``bench eval --help`` lists the models and every compressor."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from bench.compressors import (
    Capabilities,
    Family,
    Registration,
    _api,
    available_compressors,
    parse_options,
)
from bench.compressors._api import options_type_of
from bench.substrate.help import default_text


def _parsers() -> dict[str, argparse.ArgumentParser]:
    from bench.__main__ import _parser as bench_parser
    from bench.prepare.cli import _parser as prepare_parser
    from bench.train import build_parser as train_parser
    from data_builders.arxiv.cli import make_parser as arxiv_parser
    from data_builders.arxivqa.cli import make_parser as arxivqa_parser
    from leaderboard._cli import _parser as leaderboard_parser

    return {"python -m bench": bench_parser(), "bench.prepare": prepare_parser(),
            "bench.train": train_parser(), "bench.build_arxiv": arxiv_parser(),
            "bench.build_arxivqa": arxivqa_parser(), "leaderboard": leaderboard_parser()}


def _commands(name: str, parser: argparse.ArgumentParser
              ) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for command, sub in action.choices.items():
                yield from _commands(f"{name} {command}", sub)


def _every_command() -> list[tuple[str, argparse.ArgumentParser]]:
    return [pair for name, parser in _parsers().items() for pair in _commands(name, parser)]


def _option_help(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    formatter = parser.formatter_class(prog=parser.prog)
    return " ".join(formatter._format_action(action).split())


@pytest.mark.parametrize(("name", "parser"), _every_command(), ids=lambda value: str(value))
def test_every_option_shows_its_default_and_choices(name: str, parser: argparse.ArgumentParser):
    if not parser.add_help:  # ``bench eval`` hands its flags to lm-eval (tested below)
        return
    for action in parser._actions:
        if not action.option_strings or isinstance(action, argparse._HelpAction):
            continue
        text = _option_help(parser, action)
        assert action.required or "default" in text.lower(), f"{name} {text}"
        for choice in action.choices or ():
            assert str(choice) in text, f"{name}: choice {choice} missing from {text}"


def _stage_help(stage: str) -> str:
    from bench.train import build_parser

    stages = next(action for action in build_parser()._actions
                  if isinstance(action, argparse._SubParsersAction))
    return " ".join(stages.choices[stage].format_help().split())


@pytest.mark.parametrize("stage", ["pretrain", "finetune"])
def test_each_training_stage_lists_every_preset_value_and_default(stage: str):
    from bench.training.config import PRESETS, TrainConfig

    text = _stage_help(stage)
    assert f"{stage}:" in text
    for preset, stages in PRESETS.items():
        for key, value in stages[stage].items():
            flag = f"--{key.replace('_', '-')} {default_text(value)}"
            assert flag in text, f"{preset}: {flag}"
            assert f"{preset} {default_text(value)}" in text
    for spec in dataclasses.fields(TrainConfig):
        if spec.default not in (dataclasses.MISSING, None):
            assert f"default: {default_text(spec.default)}" in text, spec.name


def test_the_stages_have_their_own_help():
    pretrain, finetune = _stage_help("pretrain"), _stage_help("finetune")
    assert pretrain != finetune
    assert "Arxiv Corpus" in pretrain and "MRQA" in finetune


@dataclass(frozen=True)
class _ProbeOptions:
    """Options of the test compressor: ``strength`` of the squeeze."""

    strength: float = 0.25
    mode: str = "gentle"


def _plugin_factory(target: Any, options: Mapping[str, Any]) -> Any:
    """A compressor registered by the test, standing in for a plug-in."""
    parse_options(_ProbeOptions, options, "probe_plugin")
    raise AssertionError("the help must not build the compressor")


@pytest.fixture()
def plugin(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setitem(_api._REGISTRY, "probe_plugin",
                        Registration(_plugin_factory, Capabilities(Family.HARD)))
    return "probe_plugin"


def test_eval_help_lists_models_compressors_and_options_from_the_registry(
        plugin: str, capsys: pytest.CaptureFixture[str]):
    from bench.__main__ import main
    from bench.lmeval.plugin import MODELS

    assert main(["eval", "--help"]) == 0
    text = capsys.readouterr().out
    for model in MODELS:
        assert f"\n  {model}\n" in text, model
    names = available_compressors()
    assert plugin in names
    for name in names:
        assert f"\n  {name}\n" in text, name
        options = options_type_of(name)
        assert options is not None, name
        for spec in dataclasses.fields(options):
            assert f"{spec.name} (" in " ".join(text.split()), f"{name}: {spec.name}"
    flat = " ".join(text.split())
    assert "strength (float; default: 0.25) mode (str; default: gentle)" in flat
    assert "Options of the test compressor: strength of the squeeze." in flat
    assert "--model_args" in text and "hellaswag" not in text  # lm-eval's flags, not its examples


def test_top_level_help_names_the_console_script_and_the_commands():
    from bench.__main__ import _parser

    text = " ".join(_parser().format_help().split())
    assert "console script `compressbench`" in text
    for command in ("eval", "tasks", "demo"):
        assert f" {command} " in text
