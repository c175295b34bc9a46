"""``python -m bench demo``: the whole pipeline offline, on bundled data, in minutes on a CPU.

1. prepare the five QA benchmarks and regeneration from the bundled demo texts;
2. build a tiny seeded Llama with a tokenizer trained on those texts (no download);
3. evaluate several compressors through lm-eval with the ``compressed_reader`` model (a
   non-neural lexical reader, so that the scores mean something: a randomly initialised tiny
   model answers noise) and, to exercise the neural path, with the ``compressed`` model on the
   tiny Llama;
4. build the leaderboard and print the raw and normalised tables.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

QA_BENCHMARKS = ("arxivqa", "squad", "relation_extraction", "hotpotqa", "race")
DEMO_LENGTHS = (96,)


@dataclass(frozen=True)
class DemoRun:
    """One lm-eval run of the demo."""

    label: str
    model: str
    compressor_args: str
    tasks: tuple[str, ...]
    limit: int | None = None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("compressbench-demo"),
                        help="folder for the data, model, lm-eval runs and leaderboard "
                             "(default: ./compressbench-demo)")
    parser.add_argument("--neural-limit", type=int, default=4,
                        help="questions answered by the tiny neural model per run (default 4; "
                             "it is slow and answers noise, it only shows the path works)")
    parser.add_argument("--skip-neural", action="store_true",
                        help="skip the runs with the tiny neural model")


def _bundled(name: str) -> Path:
    return Path(str(files("bench.demo_data").joinpath(name)))


def _demo_texts() -> list[str]:
    texts = []
    for name in ("demo_qa.jsonl", "demo_regeneration.jsonl"):
        for line in _bundled(name).read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            texts.append(record.get("context") or record.get("text") or "")
            texts.extend(qa["question"] for qa in record.get("qas", []))
    from bench.lmeval.task_functions import QA_INSTRUCTION, REGENERATION_INSTRUCTION

    return [t for t in texts if t] + [QA_INSTRUCTION, REGENERATION_INSTRUCTION]


def prepare_demo(out: Path) -> tuple[Path, Path]:
    """Tiny model and prepared data under ``out``; reused when already there."""
    from bench.tiny import build_tiny_model

    model_dir = out / "model"
    if not (model_dir / "config.json").is_file():
        build_tiny_model(_demo_texts(), model_dir, seed=0)
    data_dir = out / "data"
    prepare_demo_data(model_dir, data_dir)
    return model_dir, data_dir


def prepare_demo_data(model_dir: Path, data_dir: Path) -> None:
    """Every QA benchmark and regeneration from the bundled texts, in ``model_dir``'s tokens."""
    from bench.prepare.cli import prepare_benchmark, prepare_regeneration_from_texts

    for benchmark in QA_BENCHMARKS:
        prepare_benchmark(benchmark, _bundled("demo_qa.jsonl"), data_dir, str(model_dir),
                          subset=benchmark, show_progress=False)
    lines = _bundled("demo_regeneration.jsonl").read_text(encoding="utf-8").splitlines()
    prepare_regeneration_from_texts([json.loads(line) for line in lines], data_dir,
                                    str(model_dir), DEMO_LENGTHS, source_name="demo",
                                    show_progress=False)


def demo_runs(model_dir: Path, neural_limit: int, skip_neural: bool) -> list[DemoRun]:
    """The runs of the demo: reader x compressors, then the tiny neural model."""
    tasks = ("compressed_qa", *(f"compressed_regeneration_{n}" for n in DEMO_LENGTHS))
    compressors = {
        "none": "compressor=none",
        "zero_shot": "compressor=zero_shot",
        "truncate-0.5": "compressor=truncate,rate=0.5",
        "truncate-0.25": "compressor=truncate,rate=0.25",
        "random_drop-0.5": "compressor=random_drop,rate=0.5,seed=0",
        "selective_context-0.5": f"compressor=selective_context,rate=0.5,"
                                 f"compressor_model={model_dir}",
    }
    runs = [DemoRun(f"reader-{label}", "compressed_reader",
                    f"tokenizer={model_dir},{args},compression_cache=off", tasks)
            for label, args in compressors.items()]
    if not skip_neural:
        runs += [DemoRun(f"tiny-llama-{label}", "compressed",
                         f"pretrained={model_dir},{compressors[label]},compression_cache=off",
                         ("compressed_squad",), neural_limit)
                 for label in ("none", "truncate-0.5")]
    return runs


def run_demo(options: argparse.Namespace) -> int:
    """Prepare, evaluate, tabulate; prints the tables and where everything was written."""
    import os

    from bench.lmeval.run import run_lm_eval

    out: Path = options.out.resolve()
    started = time.perf_counter()
    _quiet_libraries()
    _, data_dir = prepare_demo(out)
    os.environ["COMPRESSBENCH_DATA"] = str(data_dir)
    # Runs name the model by its path relative to ``out`` so that results (and the committed
    # baseline they are checked against) do not depend on where the demo was run.
    with contextlib.chdir(out):
        for run in demo_runs(Path("model"), options.neural_limit, options.skip_neural):
            print(f"[demo] {run.label}: lm-eval --model {run.model} "
                  f"--tasks {','.join(run.tasks)}")
            run_lm_eval(run.model, run.compressor_args, run.tasks, Path("runs") / run.label,
                        limit=run.limit)
    print_leaderboard(out / "runs", out / "leaderboard")
    print(f"[demo] done in {time.perf_counter() - started:.0f} s; lm-eval results in "
          f"{out / 'runs'}, leaderboard in {out / 'leaderboard' / 'index.html'}")
    return 0


def _quiet_libraries() -> None:
    """The demo prints its own progress; keep lm-eval and datasets to warnings that matter."""
    import logging

    import datasets

    datasets.disable_progress_bars()
    for name in ("lm_eval", "datasets", "transformers"):
        logging.getLogger(name).setLevel(logging.ERROR)


def print_leaderboard(runs: Path, out: Path) -> None:
    """Build the leaderboard from ``runs`` and print its raw and normalised tables."""
    from leaderboard.__main__ import main as leaderboard_main  # type: ignore[attr-defined]

    leaderboard_main(["build", str(runs), "--out", str(out)])
    for name in ("raw.md", "normalised.md"):
        path = out / name
        if path.is_file():
            print(path.read_text(encoding="utf-8"))
