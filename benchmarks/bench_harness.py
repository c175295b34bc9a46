"""Efficiency of the evaluation harness itself: ``--model compressed`` vs lm-eval's stock ``hf``.

    python benchmarks/bench_harness.py [--quick] [--sizes tiny,100m] [--tasks T1,T2]
        [--limit 4] [--rounds 3] [--batch-size 4] [--per-context 5] [--threads N]
        [--skip-cli] [--skip-batch-invariance] [--out DIR]

For each model size (random seeded Llamas with a tokenizer trained on the demo texts, built in
``--out`` or a temporary folder; ``100m`` is GPT-2-small sized) and the demo's QA tasks:
- in-process through lm-eval's ``simple_evaluate``: the backends loaded once and warmed up,
  then ``--rounds`` rounds with the order of the backends alternating; medians. Per backend:
  the loop (lm-eval's ``evaluate``), the set-up around it, the time outside the model's forward
  passes, and for ``compressed`` the time in compressbench's own model code (its
  ``generate_until`` and ``_model_generate`` outside lm-eval's). ``compressed`` runs with
  ``compressed_bits=off``: the harness against ``hf``. The default, ``compressed_bits=llmzip``,
  adds a measurement that ``hf`` does not make (one forward pass over each distinct kept
  text); its cost is a row of its own, from a third backend whose text sizes are forgotten
  before every round, as in a fresh run;
- through lm-eval's command line (its ``cli_evaluate`` in a fresh process per run, with a timer
  around ``evaluate``): one untimed run each, then alternating rounds; the fixed start-up cost
  is each process's wall time minus its loop;
- compress-once vs compressing per question with ``--per-context`` questions per context
  (Selective Context on the tiny model): the ratio cannot exceed that number, so a ratio above
  it is reported as a measurement error;
- identical scores at batch sizes 1, 4 and 16 (skipped with ``--quick``).

``--quick`` (tiny model, 2 questions per task, no CLI) takes about a minute on two cores.
Timings on a shared machine are noisy: compare medians across runs, not single values.
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

QA_TASKS = ("compressed_squad", "compressed_arxivqa", "compressed_relation_extraction",
            "compressed_hotpotqa", "compressed_race")
RATIO_TARGET = 0.98
OWN_CODE_TARGET = 0.01
BACKENDS = ("hf", "compressed")
WITH_BITS = "compressed_bits=llmzip"


class ForwardClock:
    """Wall time spent inside a module's forward calls."""

    def __init__(self, module: Any) -> None:
        self.seconds = 0.0
        self._start = 0.0
        module.register_forward_pre_hook(self._before)
        module.register_forward_hook(self._after)

    def _before(self, *_: Any) -> None:
        self._start = time.perf_counter()

    def _after(self, *_: Any) -> None:
        self.seconds += time.perf_counter() - self._start


class CallClock:
    """Inclusive wall time of the calls to ``owner.name`` (a class or module attribute)."""

    def __init__(self, owner: Any, name: str) -> None:
        self.seconds = 0.0
        self._owner = owner
        self._name = name
        self._original: Callable[..., Any] = getattr(owner, name)

    def __enter__(self) -> CallClock:
        original = self._original

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start

        setattr(self._owner, self._name, timed)
        return self

    def __exit__(self, *_: object) -> None:
        setattr(self._owner, self._name, self._original)


@dataclass
class RunTiming:
    """One ``simple_evaluate`` call of one backend."""

    total: float
    loop: float
    forward: float
    own: float
    responses: dict[str, list[tuple[int, str]]]


@dataclass
class BackendTimings:
    load_seconds: float
    runs: list[RunTiming] = field(default_factory=list)

    def median(self, measure: Callable[[RunTiming], float]) -> float:
        return statistics.median(measure(run) for run in self.runs)


def _responses(results: dict[str, Any], tasks: tuple[str, ...]) -> dict[str, list[tuple[int, str]]]:
    return {task: sorted((s["doc_id"], s["resps"][0][0]) for s in results["samples"][task])
            for task in tasks}


def _evaluate(lm: Any, tasks: tuple[str, ...], limit: int) -> tuple[dict[str, Any], float, float]:
    """``simple_evaluate`` on an already built model: results, total and loop seconds."""
    import lm_eval.evaluator
    from lm_eval.tasks import TaskManager

    start = time.perf_counter()
    manager = TaskManager(include_defaults=False)
    with CallClock(lm_eval.evaluator, "evaluate") as loop:
        results = lm_eval.evaluator.simple_evaluate(
            model=lm, tasks=list(tasks), task_manager=manager, limit=limit, log_samples=True,
            verbosity="WARNING")
        total = time.perf_counter() - start
    assert results is not None
    return results, total, loop.seconds


def _timed_run(lm: Any, forward: ForwardClock, tasks: tuple[str, ...], limit: int) -> RunTiming:
    """One run; ``own`` is the compressed model's code outside lm-eval's ``hf`` methods."""
    from lm_eval.models.huggingface import HFLM

    from bench.lmeval.adapter import HF_GENERATION_METHODS
    from bench.lmeval.compressed_model import CompressedLM

    forward.seconds = 0.0
    methods = HF_GENERATION_METHODS
    with ExitStack() as stack:
        ours = {name: stack.enter_context(CallClock(CompressedLM, name)) for name in methods}
        theirs = {name: stack.enter_context(CallClock(HFLM, name)) for name in methods}
        results, total, loop = _evaluate(lm, tasks, limit)
    own = sum(ours[name].seconds - theirs[name].seconds for name in methods)
    if not isinstance(lm, CompressedLM):
        own = 0.0
    return RunTiming(total, loop, forward.seconds, own, _responses(results, tasks))


def _load_backends(model_dir: Path, batch_size: int) -> dict[str, tuple[Any, float]]:
    from lm_eval.models.huggingface import HFLM

    from bench.lmeval.compressed_model import CompressedLM

    builders: dict[str, Callable[[], Any]] = {
        "hf": lambda: HFLM(pretrained=str(model_dir), device="cpu", batch_size=batch_size),
        "compressed": lambda: CompressedLM(
            pretrained=str(model_dir), compressor="none", device="cpu", batch_size=batch_size,
            compression_cache="off", compressed_bits="off"),
        WITH_BITS: lambda: CompressedLM(
            pretrained=str(model_dir), compressor="none", device="cpu", batch_size=batch_size,
            compression_cache="off", compressed_bits="llmzip"),
    }
    loaded = {}
    for name, build in builders.items():
        start = time.perf_counter()
        loaded[name] = (build(), time.perf_counter() - start)
    return loaded


def in_process(model_dir: Path, tasks: tuple[str, ...], limit: int, rounds: int,
               batch_size: int) -> tuple[dict[str, BackendTimings], bool]:
    """Warm-up, then ``rounds`` rounds alternating the order; whether the answers matched."""
    from bench.harness.answering import RunAccount

    loaded = _load_backends(model_dir, batch_size)
    clocks = {name: ForwardClock(lm.model) for name, (lm, _) in loaded.items()}
    timings = {name: BackendTimings(seconds) for name, (_, seconds) in loaded.items()}
    for lm, _ in loaded.values():
        _evaluate(lm, tasks[:1], 1)
    names = tuple(loaded)
    for round_index in range(rounds):
        order = names if round_index % 2 == 0 else tuple(reversed(names))
        for name in order:
            lm = loaded[name][0]
            if name == WITH_BITS:  # text sizes are memoised per run account: start afresh
                lm.account = RunAccount(lm.frontend, lm.account.shape)
            timings[name].runs.append(_timed_run(lm, clocks[name], tasks, limit))
    same = all(hf.responses == ours.responses for hf, ours in
               zip(timings["hf"].runs, timings["compressed"].runs, strict=True))
    return timings, same


# lm-eval's command line in a fresh process, with one timer around lm-eval's ``evaluate`` (the
# loop) whose total is written to the file named by the first argument.
_CLI_DRIVER = """
import atexit, pathlib, sys, time
import lm_eval.evaluator as evaluator
loop_file, sys.argv = pathlib.Path(sys.argv[1]), ["lm_eval", *sys.argv[2:]]
untimed, spent = evaluator.evaluate, [0.0]
def timed(*args, **kwargs):
    start = time.perf_counter()
    try:
        return untimed(*args, **kwargs)
    finally:
        spent[0] += time.perf_counter() - start
evaluator.evaluate = timed
atexit.register(lambda: loop_file.write_text(repr(spent[0])))
from lm_eval.__main__ import cli_evaluate
cli_evaluate()
"""


@dataclass(frozen=True)
class CliRun:
    """One ``lm_eval`` process: its wall time and the part of it spent in the loop."""

    wall: float
    loop: float


def _cli_arguments(backend: str, model_dir: Path, tasks: tuple[str, ...], limit: int,
                   batch_size: int) -> list[str]:
    model_args = f"pretrained={model_dir}"
    if backend == "compressed":
        model_args += ",compressor=none,compression_cache=off,compressed_bits=off"
    return ["--model", backend, "--model_args", model_args, "--tasks", ",".join(tasks),
            "--limit", str(limit), "--batch_size", str(batch_size), "--device", "cpu"]


def _cli_run(arguments: list[str], env: dict[str, str], loop_file: Path) -> CliRun:
    command = [sys.executable, "-c", _CLI_DRIVER, str(loop_file), *arguments]
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=3600)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"lm_eval {shlex.join(arguments)} failed:\n{done.stderr[-3000:]}")
    return CliRun(wall, float(loop_file.read_text(encoding="utf-8")))


def through_cli(model_dir: Path, data_dir: Path, tasks: tuple[str, ...], limit: int,
                rounds: int, batch_size: int) -> dict[str, list[CliRun]]:
    """Whole ``lm_eval`` runs: one untimed run each, then ``rounds`` alternating rounds."""
    env = {**os.environ, "COMPRESSBENCH_DATA": str(data_dir), "COMPRESSBENCH_LM_EVAL": "1"}
    runs: dict[str, list[CliRun]] = {name: [] for name in BACKENDS}
    loop_file = data_dir.parent / "cli_loop_seconds.txt"
    for round_index in range(-1, rounds):
        order = BACKENDS if round_index % 2 == 0 else tuple(reversed(BACKENDS))
        for name in order:
            run = _cli_run(_cli_arguments(name, model_dir, tasks, limit, batch_size), env,
                           loop_file)
            if round_index >= 0:
                runs[name].append(run)
    return runs


class _QuestionRequest:
    """A request as the compression front end reads it."""

    task_name = "compressed_squad"
    doc_id = 0

    def __init__(self, context: str, question: str) -> None:
        self.doc = {"context": context, "question": question, "kind": "qa"}
        self.text = f"Context: {context} Question: {question} Answer:"


@dataclass(frozen=True)
class CompressOnce:
    """Seconds per round of each mode (rounds interleave the modes context by context)."""

    once: list[float]
    per_question: list[float]
    compressions: dict[str, int]
    ceiling: int

    @property
    def ratio(self) -> float:
        """Median over rounds of per-question / once: both halves of a round saw the same
        machine load."""
        return statistics.median(p / o for p, o in zip(self.per_question, self.once,
                                                       strict=True))


def compress_once_vs_per_question(model_dir: Path, data_dir: Path, per_context: int,
                                  rounds: int) -> CompressOnce:
    """Selective Context on every demo context, asked ``per_context`` questions each."""
    import pyarrow.parquet as pq
    from transformers import AutoTokenizer

    from bench.compressors import TargetModel, build_compressor, capabilities_of
    from bench.harness.frontend import CompressionFrontEnd

    contexts = sorted({row["context"] for folder in sorted(data_dir.glob("*/test.parquet"))
                       if folder.parent.name != "regeneration"
                       for row in pq.read_table(folder).to_pylist()})
    target = TargetModel(str(model_dir), AutoTokenizer.from_pretrained(str(model_dir)))
    compressor = build_compressor("selective_context", target,
                                  {"rate": 0.5, "compressor_model": str(model_dir)})
    declared = capabilities_of("selective_context")
    frontends = {mode: CompressionFrontEnd(
        compressor, replace(declared, question_aware=mode == "per_question"), target, cache=None)
        for mode in ("once", "per_question")}
    seconds: dict[str, list[float]] = {mode: [] for mode in frontends}
    for round_index in range(-1, rounds):  # round -1 warms both modes up
        spent = dict.fromkeys(frontends, 0.0)
        for position, context in enumerate(contexts):
            requests = [_QuestionRequest(context, f"question {q} about it?")
                        for q in range(per_context)]
            modes = list(frontends) if (round_index + position) % 2 else list(reversed(frontends))
            for mode in modes:
                start = time.perf_counter()
                frontends[mode].prepare(requests)
                spent[mode] += time.perf_counter() - start
        if round_index >= 0:
            for mode, total in spent.items():
                seconds[mode].append(total)
    compressions = {mode: frontend.compressions // (rounds + 1)
                    for mode, frontend in frontends.items()}
    return CompressOnce(seconds["once"], seconds["per_question"], compressions, per_context)


def batch_invariance(model_dir: Path, limit: int) -> dict[int, tuple[float, list[str]]]:
    """F1 and answers of ``truncate`` at rate 0.5 with batch sizes 1, 4 and 16."""
    from bench.lmeval.compressed_model import CompressedLM

    scores = {}
    for batch_size in (1, 4, 16):
        lm = CompressedLM(pretrained=str(model_dir), compressor="truncate", rate=0.5,
                          device="cpu", batch_size=batch_size, compression_cache="off")
        results, _, _ = _evaluate(lm, ("compressed_squad",), limit)
        f1 = results["results"]["compressed_squad"]["squad_f1,none"]
        scores[batch_size] = (f1, [r for _, r in _responses(results, ("compressed_squad",))[
            "compressed_squad"]])
    return scores


def build_inputs(work: Path, size: str) -> tuple[Path, Path]:
    """A random Llama of ``size`` and the demo data in its tokens, reused when already built."""
    from bench.demo import _demo_texts, prepare_demo_data
    from bench.tiny import build_model_of_size

    model_dir, data_dir = work / size / "model", work / size / "data"
    if not (model_dir / "config.json").is_file():
        build_model_of_size(_demo_texts(), model_dir, size, seed=0)
    prepare_demo_data(model_dir, data_dir)
    return model_dir, data_dir


def parameter_count(model_dir: Path) -> int:
    from safetensors import safe_open

    total = 0
    for path in model_dir.glob("*.safetensors"):
        with safe_open(str(path), framework="pt") as weights:
            for name in weights.keys():  # noqa: SIM118  (safe_open is not a mapping)
                total += math.prod(weights.get_slice(name).get_shape())
    return total


@dataclass(frozen=True)
class Settings:
    sizes: tuple[str, ...]
    tasks: tuple[str, ...]
    limit: int
    rounds: int
    batch_size: int
    per_context: int
    skip_cli: bool
    skip_batch_invariance: bool
    threads: int | None
    out: Path | None

    def command(self) -> str:
        flags = ["--sizes", ",".join(self.sizes), "--tasks", ",".join(self.tasks),
                 "--limit", str(self.limit), "--rounds", str(self.rounds),
                 "--batch-size", str(self.batch_size), "--per-context", str(self.per_context)]
        flags += ["--skip-cli"] * self.skip_cli
        flags += ["--skip-batch-invariance"] * self.skip_batch_invariance
        flags += ["--threads", str(self.threads)] if self.threads is not None else []
        flags += ["--out", str(self.out)] if self.out is not None else []
        return shlex.join(["python", "benchmarks/bench_harness.py", *flags])


def _row(label: str, hf: str, ours: str, value: str = "", target: str = "") -> None:
    print(f"{label:50s} {hf:>9s} {ours:>11s} {value:>8s}  {target}")


def report_size(size: str, model_dir: Path, settings: Settings,
                timings: dict[str, BackendTimings], same: bool,
                cli: dict[str, list[CliRun]] | None) -> None:
    hf, ours = timings["hf"], timings["compressed"]
    questions = sum(len(answers) for answers in hf.runs[0].responses.values())
    print(f"\n== {size}: random Llama, {parameter_count(model_dir) / 1e6:.2f}M parameters; "
          f"{questions} questions ({len(settings.tasks)} tasks, limit {settings.limit}), "
          f"batch {settings.batch_size}; {settings.rounds} alternated rounds after a warm-up, "
          f"medians ==")
    _row("measure", "hf", "compressed", "value", "target")
    loop = {name: timings[name].median(lambda run: run.loop) for name in BACKENDS}
    _row("in-process loop seconds (lm-eval evaluate)", f"{loop['hf']:.3f}",
         f"{loop['compressed']:.3f}")
    ratios = [h.loop / o.loop for h, o in zip(hf.runs, ours.runs, strict=True)]
    _row("throughput compressed(none) / hf, in the loop", "", "",
         f"{statistics.median(ratios):.3f}",
         f">= {RATIO_TARGET}  (median of per-round ratios {_listing(ratios)})")
    outside = {name: timings[name].median(lambda run: 1 - run.forward / run.loop)
               for name in BACKENDS}
    _row("time outside model forward passes / loop", f"{outside['hf']:.1%}",
         f"{outside['compressed']:.1%}")
    _row("compressbench's own model code / loop", "-",
         f"{ours.median(lambda run: run.own / run.loop):.2%}", "", f"<= {OWN_CODE_TARGET:.0%}")
    bits = timings[WITH_BITS]
    costs = [b.loop / o.loop - 1 for b, o in zip(bits.runs, ours.runs, strict=True)]
    _row(f"extra loop time of the default {WITH_BITS}", "", "",
         f"{statistics.median(costs):+.1%}", f"(per round {_listing(costs)})")
    _row("simple_evaluate set-up outside the loop (s)",
         f"{hf.median(lambda run: run.total - run.loop):.2f}",
         f"{ours.median(lambda run: run.total - run.loop):.2f}")
    _row("model load in-process (s, once)", f"{hf.load_seconds:.2f}", f"{ours.load_seconds:.2f}")
    _row("same answers hf vs compressed(none)", "", "", str(same))
    if cli is not None:
        report_cli(cli)


def report_cli(cli: dict[str, list[CliRun]]) -> None:
    def median(measure: Callable[[CliRun], float]) -> dict[str, float]:
        return {name: statistics.median(measure(run) for run in cli[name]) for name in BACKENDS}

    def wall(run: CliRun) -> float:
        return run.wall

    def loop(run: CliRun) -> float:
        return run.loop

    walls, loops = median(wall), median(loop)
    fixed = median(lambda run: run.wall - run.loop)
    _row("CLI wall time, whole run (s)", f"{walls['hf']:.2f}", f"{walls['compressed']:.2f}")
    _row("CLI loop seconds (lm-eval evaluate)", f"{loops['hf']:.2f}",
         f"{loops['compressed']:.2f}")
    _row("CLI fixed start-up: wall - loop (s)", f"{fixed['hf']:.2f}",
         f"{fixed['compressed']:.2f}")
    for label, measure in (("whole run", wall), ("loop", loop)):
        ratios = [measure(h) / measure(o)
                  for h, o in zip(cli["hf"], cli["compressed"], strict=True)]
        _row(f"CLI throughput compressed(none) / hf, {label}", "", "",
             f"{statistics.median(ratios):.3f}", f"(per round {_listing(ratios)})")


def report_compress_once(result: CompressOnce) -> None:
    verdict = (f"MEASUREMENT ERROR: above the {result.ceiling}x ceiling"
               if result.ratio > result.ceiling else f"ceiling {result.ceiling}x")
    print(f"\ncompress-once vs per question ({result.ceiling} questions per context, "
          f"{result.compressions['once']} contexts, {len(result.once)} rounds): "
          f"{result.ratio:.2f}x [{verdict}]")
    print(f"  seconds per round, once: {_listing(result.once)}; per question: "
          f"{_listing(result.per_question)}; compressions per round "
          f"{result.compressions['once']} vs {result.compressions['per_question']}")


def _listing(values: list[float]) -> str:
    return ", ".join(f"{value:.3f}" for value in values)


def report_batches(scores: dict[int, tuple[float, list[str]]]) -> None:
    identical = len({(f1, tuple(answers)) for f1, answers in scores.values()}) == 1
    print(f"identical scores and answers at batch 1, 4, 16: {identical} "
          f"(F1 {', '.join(f'{b}: {f1:.4f}' for b, (f1, _) in scores.items())})")


@contextmanager
def _workspace(out: Path | None) -> Iterator[Path]:
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        yield out
        return
    with tempfile.TemporaryDirectory() as tmp:
        yield Path(tmp)


def run(settings: Settings) -> None:
    import torch

    from bench.lmeval.plugin import register

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    if settings.threads is not None:
        torch.set_num_threads(settings.threads)
        os.environ["OMP_NUM_THREADS"] = str(settings.threads)
    register()
    with _workspace(settings.out) as work:
        for size in settings.sizes:
            model_dir, data_dir = build_inputs(work, size)
            os.environ["COMPRESSBENCH_DATA"] = str(data_dir)
            timings, same = in_process(model_dir, settings.tasks, settings.limit,
                                       settings.rounds, settings.batch_size)
            cli = None if settings.skip_cli else through_cli(
                model_dir, data_dir, settings.tasks, settings.limit, settings.rounds,
                settings.batch_size)
            report_size(size, model_dir, settings, timings, same, cli)
        model_dir, data_dir = build_inputs(work, "tiny")
        os.environ["COMPRESSBENCH_DATA"] = str(data_dir)
        report_compress_once(compress_once_vs_per_question(
            model_dir, data_dir, settings.per_context, settings.rounds))
        if not settings.skip_batch_invariance:
            report_batches(batch_invariance(model_dir, settings.limit * 2))
    print(f"\nreproduce: {settings.command()}")


def _names(text: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in text.split(",") if name.strip())


def parse_settings(argv: list[str] | None = None) -> Settings:
    from bench.tiny import MODEL_SIZES

    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="tiny model, 2 questions per task, no CLI runs, no batch check")
    parser.add_argument("--sizes", type=_names, default=None,
                        help=f"model sizes, from {sorted(MODEL_SIZES)} (default tiny,100m)")
    parser.add_argument("--tasks", type=_names, default=None,
                        help="lm-eval tasks (default the five demo QA tasks)")
    parser.add_argument("--limit", type=int, default=None, help="questions per task (4)")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds, >= 3 (3)")
    parser.add_argument("--batch-size", type=int, default=4, help="batch size (4)")
    parser.add_argument("--per-context", type=int, default=5,
                        help="questions per context for compress-once (5)")
    parser.add_argument("--skip-cli", action="store_true", help="no lm_eval CLI runs")
    parser.add_argument("--skip-batch-invariance", action="store_true",
                        help="no batch-size check")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads, in-process and (OMP_NUM_THREADS) in CLI runs "
                             "(default: torch's)")
    parser.add_argument("--out", type=Path, default=None,
                        help="keep models and data here (default: a temporary folder)")
    args = parser.parse_args(argv)
    if args.rounds < 3:
        parser.error("--rounds must be at least 3 (medians of fewer runs mislead)")
    sizes = args.sizes or (("tiny",) if args.quick else ("tiny", "100m"))
    unknown = sorted(set(sizes) - set(MODEL_SIZES))
    if unknown:
        parser.error(f"unknown --sizes {unknown}; choose from {sorted(MODEL_SIZES)}")
    return Settings(
        sizes=sizes, tasks=args.tasks or QA_TASKS, limit=args.limit or (2 if args.quick else 4),
        rounds=args.rounds,
        batch_size=args.batch_size, per_context=args.per_context,
        skip_cli=args.skip_cli or args.quick,
        skip_batch_invariance=args.skip_batch_invariance or args.quick, threads=args.threads,
        out=args.out)


def main() -> None:
    run(parse_settings())


if __name__ == "__main__":
    main()
