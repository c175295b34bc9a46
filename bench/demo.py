"""``python -m bench demo``: the whole pipeline offline, on bundled data, in minutes on a CPU.

1. prepare the five QA benchmarks and regeneration from the bundled demo texts;
2. build a tiny seeded Llama with a tokenizer trained on those texts (no download);
3. sweep several compressors through lm-eval (:mod:`bench.sweep`) with the
   ``compressed_reader`` model (a non-neural lexical reader, so that the scores mean
   something: a randomly initialised tiny model answers noise) and, to exercise the neural
   path, with the ``compressed`` model on the tiny Llama;
4. build the leaderboard and print the raw and normalised tables.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import time
from importlib.resources import files
from pathlib import Path

from bench import specs
from bench.sweep import SweepSettings, parse_compressors, prepare_sweep, run_sweep

MODEL_FOLDER = "tiny-llama-random-init"  # the model's name in the tables
TRAINED_FOLDER = "tiny-llama-trained"  # its copy trained briefly on the demo texts
DEMO_LENGTHS = (96,)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("compressbench-demo"),
                        help="folder for the data, model, lm-eval runs and leaderboard "
                             "(default: ./compressbench-demo)")
    parser.add_argument("--neural-limit", type=int, default=4,
                        help="questions answered by the tiny neural model per run (default 4; "
                             "it is slow and answers noise, it only shows the path works)")
    parser.add_argument("--skip-neural", action="store_true",
                        help="skip the runs with the tiny neural model")
    parser.add_argument("--prepare-only", action="store_true",
                        help="only build the tiny model and prepare the data, print where "
                             "they are and stop (for the README's offline commands)")


def bundled_path(name: str) -> Path:
    """A file of the bundled demo data (``demo_qa.jsonl``, ``demo_regeneration.jsonl``)."""
    return Path(str(files("bench.demo_data").joinpath(name)))


def _demo_texts() -> list[str]:
    texts = []
    for name in ("demo_qa.jsonl", "demo_regeneration.jsonl"):
        for line in bundled_path(name).read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            texts.append(record.get("context") or record.get("text") or "")
            texts.extend(qa["question"] for qa in record.get("qas", []))
    from bench.lmeval.task_functions import QA_INSTRUCTION, REGENERATION_INSTRUCTION

    return [t for t in texts if t] + [QA_INSTRUCTION, REGENERATION_INSTRUCTION]


def prepare_demo(out: Path) -> tuple[Path, Path]:
    """Tiny model and prepared data under ``out``; reused when already there."""
    from bench.substrate.atomic import atomic_directory
    from bench.tiny import build_tiny_model, fit_tiny_model

    model_dir = out / MODEL_FOLDER
    if not (model_dir / "config.json").is_file():
        build_tiny_model(_demo_texts(), model_dir, seed=0)
    if not (out / TRAINED_FOLDER / "config.json").is_file():
        with atomic_directory(out / TRAINED_FOLDER) as staging:
            fit_tiny_model(model_dir, _demo_texts(), staging)
    data_dir = out / "data"
    prepare_demo_data(model_dir, data_dir)
    return model_dir, data_dir


def prepare_demo_data(model_dir: Path, data_dir: Path) -> None:
    """Every QA benchmark and regeneration from the bundled texts, in ``model_dir``'s tokens."""
    from bench.prepare.cli import prepare_benchmark, prepare_regeneration_from_texts

    for spec in specs.benchmarks("qa"):
        prepare_benchmark(spec.name, bundled_path("demo_qa.jsonl"), data_dir, str(model_dir),
                          subset=spec.name, show_progress=False)
    lines = bundled_path("demo_regeneration.jsonl").read_text(encoding="utf-8").splitlines()
    prepare_regeneration_from_texts([json.loads(line) for line in lines], data_dir,
                                    str(model_dir), DEMO_LENGTHS, source_name="demo",
                                    show_progress=False)


def demo_sweeps(model_dir: Path, neural_limit: int, skip_neural: bool
                ) -> list[tuple[SweepSettings, str]]:
    """The sweeps of the demo (settings and ``--compressors``): the lexical reader over
    several compressors, then the briefly trained tiny model over one compressor per
    family; runs and page under ``.``."""
    (regeneration,) = specs.benchmarks("regeneration")
    tasks = (specs.QA_GROUP, *(f"{regeneration.task}_{n}" for n in DEMO_LENGTHS))
    compressors = ("none;zero_shot;truncate:rate=0.5,0.25;random_drop:rate=0.5,seed=0;"
                   f"selective_context:rate=0.5,compressor_model={model_dir}")
    reader = SweepSettings(model="compressed_reader", pretrained=str(model_dir), tasks=tasks,
                           out=Path("."), model_args="compression_cache=off")
    sweeps = [(reader, compressors)]
    if not skip_neural:
        neural = dataclasses.replace(
            reader, model="compressed", pretrained=str(model_dir.parent / TRAINED_FOLDER),
            tasks=("compressed_squad", f"{regeneration.task}_{DEMO_LENGTHS[0]}"),
            limit=neural_limit)
        sweeps.append((neural, ";".join(neural_compressors())))
    return sweeps


def neural_compressors() -> list[str]:
    """One compressor of each family the tiny model can run without a trained checkpoint:
    baseline, hard, lossless, per-sample optimised vectors, 500x's KV slots (seeded, not
    trained: they carry nothing, the row shows the path and its size) and, when kvpress is
    installed (the ``kv`` extra), a KV-cache press; all on the page's bits-per-byte axis."""
    import importlib.util

    compressors = ["none", "truncate:rate=0.5", "llmzip", "cram:num_mem=2,steps=20",
                   "500x:num_mem=4"]
    if importlib.util.find_spec("kvpress") is not None:
        compressors.append("kvpress:press=knorm,rate=0.5")
    return compressors


def run_demo(options: argparse.Namespace) -> int:
    """Prepare, evaluate, tabulate; prints the tables and where everything was written."""
    import os

    out: Path = options.out.resolve()
    started = time.perf_counter()
    _quiet_libraries()
    model_dir, data_dir = prepare_demo(out)
    print(describe_model(model_dir))
    print(describe_data(data_dir))
    if options.prepare_only:
        return 0
    os.environ["COMPRESSBENCH_DATA"] = str(data_dir)
    # Runs name the model by its path relative to ``out`` so that results (and the committed
    # baseline they are checked against) do not depend on where the demo was run.
    with contextlib.chdir(out):
        sweeps = demo_sweeps(Path(MODEL_FOLDER), options.neural_limit, options.skip_neural)
        for settings, compressors in sweeps:
            print(f"[demo] sweep --model {settings.model} --pretrained {settings.pretrained} "
                  f"--compressors '{compressors}' --model_args {settings.model_args} "
                  f"--tasks {','.join(settings.tasks)}"
                  + (f" --limit {settings.limit}" if settings.limit is not None else ""),
                  flush=True)
            _run_sweep(settings, compressors)
    print_leaderboard(out / "runs", out / "leaderboard")
    print(f"[demo] done in {time.perf_counter() - started:.0f} s")
    print(describe_outputs(out, options.skip_neural))
    return 0


def _run_sweep(settings: SweepSettings, compressors: str) -> None:
    runs = prepare_sweep(settings, parse_compressors(compressors))
    for outcome in run_sweep(settings, runs):
        label = f"{settings.model} {outcome.run.combination.label()}"
        scored = ("finished by an earlier demo" if outcome.results is None
                  else f"scored {describe_counts(outcome.results)}")
        print(f"[demo]   {label}: {scored}", flush=True)


def describe_model(model_dir: Path) -> str:
    """Where the demo's model is and what it is."""
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    return (f"[demo] model: {model_dir}\n"
            f"[demo]   a randomly initialised (seed 0) {config.get('model_type', '?')} with "
            f"{config.get('num_hidden_layers')} layers, hidden size "
            f"{config.get('hidden_size')} and a {config.get('vocab_size')}-token BPE "
            "tokenizer trained on the bundled texts; built here, nothing downloaded\n"
            f"[demo]   its copy {model_dir.parent / TRAINED_FOLDER}: trained for 300 "
            "next-token steps on the same texts, for the neural runs")


def describe_data(data_dir: Path) -> str:
    """Where the prepared data is, from which files, and how many questions and texts."""
    counts = []
    for spec in specs.benchmarks():
        manifest_path = data_dir / spec.name / "manifest.json"
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        rows = manifest.get("output", {}).get("rows")
        unit = "texts" if spec.kind == "regeneration" else "questions"
        counts.append(f"{spec.name} {rows} {unit}")
    sources = ", ".join(str(bundled_path(name))
                        for name in ("demo_qa.jsonl", "demo_regeneration.jsonl"))
    return (f"[demo] data: {data_dir} (COMPRESSBENCH_DATA for lm-eval)\n"
            f"[demo]   {', '.join(counts)}\n"
            f"[demo]   prepared from the bundled {sources}; each QA set is a few questions "
            "on short invented texts, named after the benchmark whose format it imitates")


def describe_counts(results: dict[str, object]) -> str:
    """``45 questions (5 tasks), 12 texts`` from lm-eval's ``n-samples``."""
    samples = results.get("n-samples")
    if not isinstance(samples, dict) or not samples:
        return "no samples"
    questions = texts = qa_tasks = 0
    regeneration = {task for spec in specs.benchmarks("regeneration")
                    for task in (spec.task, *spec.task_lengths())}
    for task, count in samples.items():
        effective = int(count.get("effective", 0)) if isinstance(count, dict) else 0
        if task in regeneration:
            texts += effective
        else:
            questions += effective
            qa_tasks += 1
    parts = [f"{_count(questions, 'question')} ({_count(qa_tasks, 'QA task')})"] if qa_tasks else []
    if texts:
        parts.append(_count(texts, "regeneration text"))
    return ", ".join(parts)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def describe_outputs(out: Path, skip_neural: bool) -> str:
    """Where the runs and the page are, and how to read them."""
    lines = [
        f"[demo] runs: {out / 'runs'} (one lm-eval output folder per run)",
        f"[demo] page: {out / 'leaderboard' / 'index.html'} (tables also as Markdown, CSV, "
        f"LaTeX and JSON in {out / 'leaderboard'})",
        "[demo] the reader rows answer with a lexical extractive reader, so they rank the "
        "compressors by what survives of the context; with about ten questions per set the "
        "standard errors are wide",
    ]
    if not skip_neural:
        lines.append("[demo] the tiny-llama-trained rows run one compressor per family "
                     "through the neural path (on the page's bits-per-byte view): a tiny model "
                     "trained for seconds answers QA with noise (all-zero rows are listed, not "
                     "plotted) and regenerates only the texts' common words")
    lines.append("[demo] next: the README's 'Evaluating offline' runs bench.prepare, lm_eval "
                 "and leaderboard build on this model and data")
    return "\n".join(lines)


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

    with contextlib.redirect_stdout(io.StringIO()):  # the list of files it wrote
        leaderboard_main(["build", str(runs), "--out", str(out)])
    for name in ("raw.md", "normalised.md"):
        path = out / name
        if path.is_file():
            print(path.read_text(encoding="utf-8"))
