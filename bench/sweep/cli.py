"""``python -m bench sweep``: compressors x options through lm-eval, then the leaderboard."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.sweep.combinations import parse_compressors
from bench.sweep.runner import SweepSettings, build_page, prepare_sweep, run_sweep

SWEEP_DESCRIPTION = """\
Run every combination of compressor and option values through lm-eval in this
process, one lm-eval output folder per combination (as `lm_eval --log_samples`
writes it), then build the leaderboard. The target model is loaded once for
all the compressors that hand it text; those that feed it vectors get a model
of their own. Combinations that differ only in their budget (rate,
target_tokens) run one after the other and share what a compressor computes
whatever the budget (its loaded model, per-context scores). A second sweep
into the same --out skips the combinations it finished. The model, the tasks,
every compressor and every option are checked before any model is loaded."""


def sweep_example(program: str) -> str:
    """The help's example, as ``program`` (how the command was run) writes it."""
    return (f"example:\n  {program} sweep --model compressed --pretrained MODEL \\\n"
            "      --compressors 'none;truncate:rate=0.5,0.25;llmlingua2:rate=0.33' \\\n"
            "      --tasks compressed_qa --out sweep/\n"
            "  runs sweep/runs/MODEL__none, ...__truncate_rate=0.5, ...__truncate_rate=0.25,\n"
            "  ...__llmlingua2_rate=0.33, then writes sweep/leaderboard/index.html")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="compressed",
                        help="lm-eval model that answers: compressed (a Hugging Face causal "
                             "LM), compressed_reader (the lexical reader), "
                             "compressed_completions or compressed_chat_completions (a served "
                             "model), or a stock lm-eval model such as hf with --compressors "
                             "none")
    parser.add_argument("--pretrained", required=True,
                        help="the target: its model_args key is tokenizer= for "
                             "compressed_reader, model= for the served models and pretrained= "
                             "for the others")
    parser.add_argument("--compressors", required=True, metavar="SPEC",
                        help="entries NAME[:key=value,...] separated by ';'. A comma item "
                             "without '=' adds a value to the option before it, and options "
                             "with several values multiply: 'none;truncate:rate=0.5,0.25' is "
                             "three runs, 'random_drop:rate=0.5,0.25,seed=0,1' four "
                             "(`python -m bench eval --help` lists every compressor and its "
                             "options)")
    parser.add_argument("--tasks", required=True, type=_comma_list,
                        help="comma-separated compressbench tasks or groups, e.g. "
                             "compressed_qa,compressed_regeneration_96")
    parser.add_argument("--out", type=Path, required=True,
                        help="folder of the sweep: one lm-eval output folder per combination "
                             "in OUT/runs/, the page in OUT/leaderboard/; a second sweep into "
                             "it skips the combinations already finished")
    parser.add_argument("--model_args", default="",
                        help="more model_args for every combination, e.g. "
                             "dtype=bfloat16,compression_cache=off (default: none)")
    parser.add_argument("--limit", type=_positive, default=None,
                        help="documents per task (default: all)")
    parser.add_argument("--batch_size", default="1",
                        help="lm-eval's --batch_size (a number, or auto)")
    parser.add_argument("--device", default=None,
                        help="lm-eval's --device (default: cuda when a GPU is visible, else "
                             "cpu)")


def _comma_list(text: str) -> tuple[str, ...]:
    items = tuple(item.strip() for item in text.split(",") if item.strip())
    if not items:
        raise argparse.ArgumentTypeError("give at least one task")
    return items


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return int(text)


def _batch_size(text: str) -> int | str:
    return int(text) if text.isdigit() else text


def settings_from(options: argparse.Namespace) -> SweepSettings:
    return SweepSettings(model=options.model, pretrained=options.pretrained,
                         tasks=options.tasks, out=options.out, model_args=options.model_args,
                         limit=options.limit, batch_size=_batch_size(options.batch_size),
                         device=options.device)


def run_command(options: argparse.Namespace) -> int:
    """Check everything, run what is not finished, build the page; prints where it is."""
    settings = settings_from(options)
    runs = prepare_sweep(settings, parse_compressors(options.compressors))
    from tqdm import tqdm

    for outcome in run_sweep(settings, runs):
        state = "finished earlier" if outcome.results is None else "done"
        if outcome.reused:
            state += f" (scores of {outcome.reused} contexts from earlier runs)"
        tqdm.write(f"[sweep] {outcome.run.combination.label()}: {state}, {outcome.run.folder}")
    print(f"[sweep] page: {build_page(settings)}")
    return 0
