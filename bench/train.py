"""Train a soft compressor: ``python -m bench.train pretrain|finetune --method METHOD ...``
(the registered training methods: 500x, icae, gist, autocompressor and plug-ins).

Also runs under ``accelerate launch -m bench.train ...`` for several GPUs. Resumes from the
newest ``OUT/checkpoint-*`` automatically; the trained weights end in ``OUT/final``, loadable
with ``--model_args pretrained=BASE,compressor=METHOD,checkpoint=OUT/final`` (500x, icae) or
``pretrained=OUT/final,compressor=gist|autocompressor``.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections.abc import Sequence
from dataclasses import MISSING, Field, fields
from pathlib import Path
from typing import Any

from bench.substrate.errors import InputError, add_debug_flag, run_cli
from bench.substrate.help import RawHelpFormatter, default_text
from bench.training.config import PRESETS, STAGES, TrainConfig, preset_values
from bench.training.registry import Setting, TrainingMethod, training_methods

_STAGE_HELP = {
    "pretrain": "regeneration pretraining: the decoder learns to rebuild the context from "
                "the memory (data: an Arxiv Corpus folder or a parquet file with `text`)",
    "finetune": "QA fine-tuning: the decoder answers a question from the memory (data: an "
                "MRQA .jsonl(.gz) or a folder with train/dev/test.parquet; start from the "
                "pretrain run with --init-from)",
}
_STAGE_DATA = {
    "pretrain": "Arxiv Corpus folder (train.parquet/dev.parquet with `text`) or a parquet file",
    "finetune": "MRQA .jsonl(.gz) or a folder with train/dev/test.parquet holding context, "
                "question, answers",
}
_REQUIRED = ("base", "data", "out")


def build_parser() -> argparse.ArgumentParser:
    """``pretrain`` and ``finetune`` sub-commands, each with its own help and preset values."""
    parser = argparse.ArgumentParser(prog="python -m bench.train", description=__doc__,
                                     formatter_class=RawHelpFormatter,
                                     epilog="Each stage has its own help: python -m bench.train "
                                            "pretrain --help, python -m bench.train finetune "
                                            "--help (defaults and preset values).")
    add_debug_flag(parser)
    stages = parser.add_subparsers(dest="stage", required=True, metavar="{pretrain,finetune}")
    for stage in STAGES:
        sub = stages.add_parser(stage, help=_STAGE_HELP[stage],
                                description=f"{stage}: {_STAGE_HELP[stage]}.",
                                epilog=preset_table(stage), formatter_class=RawHelpFormatter)
        _add_stage_flags(sub, stage)
        add_debug_flag(sub)
    return parser


def _add_stage_flags(parser: argparse.ArgumentParser, stage: str) -> None:
    parser.add_argument("--preset", choices=sorted(PRESETS),
                        help="named settings, listed below (flags given explicitly override "
                             "them; default: none, the defaults shown per flag)")
    methods = training_methods()
    for spec in fields(TrainConfig):
        if spec.name in ("stage", "extra"):
            continue
        about = _about(spec, stage, methods)
        text = about.help
        if spec.name not in _REQUIRED:
            text = f"{text} ({_default_and_presets(spec, stage, about)})"
        _add_flag(parser, spec, text, about.choices, required=spec.name in _REQUIRED)
    for method in methods.values():
        for option in method.option_fields():
            about = Setting(f"{method.name}: {option.metadata.get('help', '')}".rstrip(": "),
                            option.metadata.get("choices"))
            text = f"{about.help} ({_default_and_presets(option, stage, about)})"
            _add_flag(parser, option, text, about.choices, required=False)


def _about(spec: Field[Any], stage: str, methods: dict[str, TrainingMethod]) -> Setting:
    """The help and choices of a TrainConfig field: its own, or those of the methods that
    read it (named in front)."""
    if spec.name == "method":
        return Setting("soft compression method: " + "; ".join(
            f"{name} ({method.summary})" for name, method in methods.items()),
            choices=tuple(methods))
    if spec.name == "data":
        return Setting(_STAGE_DATA[stage])
    if "help" in spec.metadata:
        return Setting(spec.metadata["help"], spec.metadata.get("choices"))
    readers = [name for name, method in methods.items() if spec.name in method.settings]
    setting = methods[readers[0]].settings[spec.name]
    return Setting(f"{', '.join(readers)}: {setting.help}", setting.choices, setting.default_text)


def _add_flag(parser: argparse.ArgumentParser, spec: Field[Any], text: str,
              choices: tuple[str, ...] | None, required: bool) -> None:
    flag = "--" + spec.name.replace("_", "-")
    text = text.replace("%", "%%")
    kind = str(spec.type)
    if "bool" in kind:
        parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=text)
        return
    convert: Any = str
    if kind.startswith("int"):
        convert = int
    elif kind.startswith("float"):
        convert = float
    parser.add_argument(flag, type=convert, default=None, choices=choices, required=required,
                        help=text)


def _field_default(spec: Field[Any]) -> Any:
    if spec.default is not MISSING:
        return spec.default
    return spec.default_factory() if spec.default_factory is not MISSING else None


def _default_and_presets(spec: Field[Any], stage: str, about: Setting) -> str:
    """``default: X`` and the value each preset sets for ``stage``, where it sets one."""
    default = _field_default(spec)
    if spec.name == "method":
        shown = "none: give it or a preset"
    elif about.default_text is not None:
        shown = about.default_text
    elif default is None:
        shown = "none"
    else:
        shown = default_text(default)
    presets = [f"{name} {default_text(PRESETS[name][stage][spec.name])}"
               for name in sorted(PRESETS) if spec.name in PRESETS[name][stage]]
    return f"default: {shown}" + (f"; presets: {', '.join(presets)}" if presets else "")


def preset_table(stage: str) -> str:
    """Every preset's settings for ``stage``, in flag order, wrapped under its name."""
    order = [spec.name for spec in fields(TrainConfig)]
    lines = [f"presets for {stage} (flags given explicitly override them):"]
    for name in sorted(PRESETS):
        settings = PRESETS[name][stage]
        # A no-break space keeps each flag on the line of its value.
        values = " ".join(f"--{key.replace('_', '-')}\N{NO-BREAK SPACE}"
                          f"{default_text(settings[key])}"
                          for key in sorted(settings, key=order.index))
        lines.append(f"  {name}:")
        lines += [line.replace("\N{NO-BREAK SPACE}", " ") for line in textwrap.wrap(
            values, width=88, initial_indent="    ", subsequent_indent="    ",
            break_on_hyphens=False)]
    return "\n".join(lines)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """Defaults < preset < explicit flags."""
    values: dict[str, Any] = {"stage": args.stage}
    if args.preset:
        values.update(preset_values(args.preset, args.stage))
    for spec in fields(TrainConfig):
        given = getattr(args, spec.name, None)
        if given is not None and spec.name != "stage":
            values[spec.name] = given
    extra = {option.name: getattr(args, option.name)
             for method in training_methods().values() for option in method.option_fields()
             if getattr(args, option.name, None) is not None}
    if extra:
        values["extra"] = extra
    if isinstance(values.get("lora_targets"), str):
        values["lora_targets"] = tuple(t.strip() for t in values["lora_targets"].split(",") if t)
    if "method" not in values:
        raise InputError("--method is required (or a --preset that sets it)")
    return TrainConfig(**values)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; bad input ends in one line on stderr and exit status 2 (``--debug``:
    with the traceback), a model or file that cannot be loaded in status 1."""
    return run_cli(_run, argv, failures=(OSError,))


def _check_local_paths(config: TrainConfig) -> None:
    """Name a missing --base/--init-from/--data, or a --base the hub cannot give, before
    any model is loaded."""
    from bench.hub import looks_like_local_path

    for flag, value, hint in (
        ("--base", config.base, "give a local model folder or a hub id"),
        ("--init-from", config.init_from, "give the folder of trained weights (final/)"),
        ("--data", config.data, "give a corpus folder, a parquet or an MRQA file"),
    ):
        if value and (looks_like_local_path(str(value)) or flag != "--base"):
            path = Path(str(value)).expanduser()
            if not path.exists():
                raise InputError("no such file or folder", path, field=flag, hint=hint)
    _check_base(config.base, config.revision)


def _check_base(base: str, revision: str | None) -> None:
    """A hub id given as --base must be cached or reachable (its config is loaded, not yet
    its weights)."""
    from transformers import AutoConfig

    from bench.hub import load_from_hub

    load_from_hub(lambda: AutoConfig.from_pretrained(base, revision=revision), base,
                  "base model", "--base", revision=revision)


def _run(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(argv)
    config = config_from_args(args)
    _check_local_paths(config)
    from bench.training.loop import train

    result = train(config)
    print(f"trained {config.method} ({config.stage}) for {result.step} steps; "
          f"weights in {result.final_dir}")
    if result.train_seconds:
        utilisation = "" if result.mfu is None else f", MFU {result.mfu:.1%}"
        print(f"throughput: {result.tokens_per_second:.0f} tokens/s{utilisation}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
