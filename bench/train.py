"""Train a soft compressor: ``python -m bench.train pretrain|finetune --method 500x|icae ...``.

Also runs under ``accelerate launch -m bench.train ...`` for several GPUs. Resumes from the
newest ``OUT/checkpoint-*`` automatically; the trained weights end in ``OUT/final``, loadable
with ``--model_args pretrained=BASE,compressor=METHOD,checkpoint=OUT/final``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

from bench._errors import InputError, add_debug_flag, run_cli
from bench.compressors.soft._layout import DECODER_POSITIONS, LAYOUTS
from bench.training.config import METHODS, PRESETS, STAGES, TrainConfig, preset_values

_HELP = {
    "method": "soft compression method: 500x (KV memory) or icae (embedding memory; the "
              "500xCompressor code's ICAE baseline, i.e. compressor icae,variant=500x-baseline)",
    "base": "base LM (hub id or local folder); frozen decoder and the encoder's base",
    "data": "pretrain: Arxiv Corpus folder (train.parquet/dev.parquet with `text`) or a "
            "parquet file; finetune: MRQA .jsonl(.gz) or a folder with train/dev/test.parquet "
            "holding context, question, answers",
    "out": "output folder: checkpoint-*/ (resumable), final/, metrics.json",
    "num_mem": "memory slots k",
    "layout": "encoder/decoder layout: reference (the 500xCompressor code's: no BOS, EOS "
              "right-padding to --context-length, memory after it, 500x decoder at k) or "
              "compressbench (BOS + context, left padding with a mask)",
    "context_length": "reference layout: fixed encoder length the context is EOS-padded to "
                      "(training also cuts contexts to it)",
    "decoder_positions": "500x, compressbench layout: decoder tokens continue after the memory "
                         "positions (continue, default) or restart at k (restart)",
    "max_qa_len": "reference layout, finetune: question + answer ids are EOS-padded to this",
    "loss_on_padding": "reference layout, pretrain: every EOS pad of the context is a target "
                       "(default, as the reference); --no-loss-on-padding scores the real "
                       "tokens and one EOS",
    "revision": "base model revision (branch, tag or commit) to load and record",
    "dev": "explicit dev file (else dev.parquet beside the data, else a seeded hold-out)",
    "init_from": "start from these trained weights (e.g. the pretrain run's final/ folder)",
    "steps": "optimizer steps",
    "lr": "peak learning rate (AdamW)",
    "batch_size": "examples per micro-batch per process",
    "grad_accum": "micro-batches accumulated per optimizer step",
    "warmup_steps": "linear warm-up steps",
    "schedule": "after warm-up: constant or linear decay to 0",
    "weight_decay": "AdamW weight decay",
    "max_grad_norm": "gradient clipping norm (0 disables)",
    "max_context_tokens": "context tokens the encoder reads at evaluation (longer contexts are "
                          "cut); compressbench layout: also in training",
    "max_answer_tokens": "QA answer tokens trained on / generated at eval",
    "lora_r": "LoRA rank",
    "lora_alpha": "LoRA alpha",
    "lora_dropout": "LoRA dropout",
    "lora_targets": "comma-separated module names that get LoRA",
    "dtype": "base model dtype: auto (bf16 on CUDA with autocast, fp32 on CPU), float32, bfloat16",
    "gradient_checkpointing": "recompute layer activations in the backward pass (less memory)",
    "seed": "seed of initialisation, data order and dropout",
    "dev_size": "dev examples evaluated",
    "eval_every": "evaluate every N steps (0: never; also at step 0)",
    "eval_generate": "dev examples decoded for Rouge-L-F / SQuAD F1 at each eval",
    "save_every": "write a resumable checkpoint every N steps",
    "keep_checkpoints": "resumable checkpoints kept",
    "max_train_examples": "use only the first N training examples",
    "progress": "show a progress bar (loss, learning rate, tokens/s and, on GPUs, MFU)",
    "peak_tflops": "the GPU's dense bf16 peak TFLOP/s for MFU (known GPUs are looked up)",
    "export_500x_repo": "also write final/pytorch_model.bin in the 500xCompressor code's "
                        "format (LoRA on q_proj,v_proj only)",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stage", choices=STAGES, help="pretrain (regeneration) or finetune (QA)")
    parser.add_argument("--preset", choices=sorted(PRESETS),
                        help="named settings (flags given explicitly override them)")
    for spec in fields(TrainConfig):
        if spec.name in ("stage", "extra"):
            continue
        flag = "--" + spec.name.replace("_", "-")
        kind = str(spec.type)
        if "bool" in kind:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None,
                                help=_HELP[spec.name])
            continue
        convert: Any = str
        if kind.startswith("int"):
            convert = int
        elif kind.startswith("float"):
            convert = float
        choices = {"method": METHODS, "layout": LAYOUTS,
                   "decoder_positions": DECODER_POSITIONS}.get(spec.name)
        parser.add_argument(flag, type=convert, default=None, choices=choices,
                            required=spec.name in ("base", "data", "out"),
                            help=_HELP[spec.name])
    add_debug_flag(parser)
    return parser


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """Defaults < preset < explicit flags."""
    values: dict[str, Any] = {"stage": args.stage}
    if args.preset:
        values.update(preset_values(args.preset, args.stage))
    for spec in fields(TrainConfig):
        given = getattr(args, spec.name, None)
        if given is not None and spec.name != "stage":
            values[spec.name] = given
    if isinstance(values.get("lora_targets"), str):
        values["lora_targets"] = tuple(t.strip() for t in values["lora_targets"].split(",") if t)
    if "method" not in values:
        raise InputError("--method is required (or a --preset that sets it)")
    return TrainConfig(**values)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; bad input ends in one line on stderr and exit status 2 (``--debug``:
    with the traceback), a model or file that cannot be loaded in status 1."""
    return run_cli(_run, argv, failures=(OSError,))


def _looks_local(name: str) -> bool:
    return name.startswith((".", "~", os.sep)) or name.count("/") > 1


def _check_local_paths(config: TrainConfig) -> None:
    """Name a missing local --base/--init-from/--data before any model is loaded."""
    for flag, value, hint in (
        ("--base", config.base, "give a local model folder or a hub id"),
        ("--init-from", config.init_from, "give the folder of trained weights (final/)"),
        ("--data", config.data, "give a corpus folder, a parquet or an MRQA file"),
    ):
        if value and (_looks_local(str(value)) or flag == "--data"):
            path = Path(str(value)).expanduser()
            if not path.exists():
                raise InputError("no such file or folder", path, field=flag, hint=hint)


def _run(argv: Sequence[str]) -> int:
    from bench.training.loop import train

    args = build_parser().parse_args(argv)
    config = config_from_args(args)
    _check_local_paths(config)
    result = train(config)
    print(f"trained {config.method} ({config.stage}) for {result.step} steps; "
          f"weights in {result.final_dir}")
    if result.train_seconds:
        utilisation = "" if result.mfu is None else f", MFU {result.mfu:.1%}"
        print(f"throughput: {result.tokens_per_second:.0f} tokens/s{utilisation}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
