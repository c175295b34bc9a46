"""Efficiency of the evaluation harness itself, on a tiny model and the bundled demo data.

    python benchmarks/bench_harness.py [--questions 12] [--out DIR]

Prints one table:
- throughput of ``--model compressed`` with ``compressor=none`` vs lm-eval's stock ``hf`` on the
  same task and model (target ratio >= 1.0);
- compress-once vs compressing per question on contexts with 5 questions each (target >= 3x);
- harness overhead: wall time outside the model's forward passes / total, and wall time in
  compressbench's own code (outside the hf generation loop and the compressor) / total;
- identical scores at batch sizes 1, 4 and 16;
- metric scoring throughput on 100k prediction/gold pairs (benchmarks/bench_metrics.py).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


class ForwardClock:
    """Accumulates wall time spent inside a module's forward calls."""

    def __init__(self, module: Any) -> None:
        self.seconds = 0.0
        self._start = 0.0
        module.register_forward_pre_hook(self._before)
        module.register_forward_hook(self._after)

    def _before(self, *_: Any) -> None:
        self._start = time.perf_counter()

    def _after(self, *_: Any) -> None:
        self.seconds += time.perf_counter() - self._start


def _evaluate(lm: Any, tasks: list[str], limit: int | None) -> tuple[dict[str, Any], float]:
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_defaults=False)
    start = time.perf_counter()
    results = simple_evaluate(model=lm, tasks=tasks, task_manager=manager, limit=limit,
                              log_samples=True)
    return results, time.perf_counter() - start


def _responses(results: dict[str, Any], task: str) -> list[str]:
    return [s["resps"][0][0] for s in results["samples"][task]]


def throughput_vs_hf(model_dir: Path, limit: int) -> dict[str, Any]:
    """compressed(none) vs stock hf, same task, model and batch size."""
    from lm_eval.models.huggingface import HFLM

    from bench.lmeval.compressed_model import CompressedLM

    hf = HFLM(pretrained=str(model_dir), device="cpu", batch_size=4)
    ours = CompressedLM(pretrained=str(model_dir), compressor="none", device="cpu",
                        batch_size=4, compression_cache="off")
    hf_clock, our_clock = ForwardClock(hf.model), ForwardClock(ours.model)
    hf_results, hf_seconds = _evaluate(hf, ["compressed_squad"], limit)
    in_generate = [0.0]
    original = HFLM.generate_until

    def timed(self: Any, requests: Any, disable_tqdm: bool = False) -> Any:
        start = time.perf_counter()
        try:
            return original(self, requests, disable_tqdm)
        finally:
            in_generate[0] += time.perf_counter() - start

    HFLM.generate_until = timed  # type: ignore[method-assign]
    try:
        our_results, our_seconds = _evaluate(ours, ["compressed_squad"], limit)
    finally:
        HFLM.generate_until = original  # type: ignore[method-assign]
    same = _responses(hf_results, "compressed_squad") == _responses(our_results,
                                                                    "compressed_squad")
    return {"hf_seconds": hf_seconds, "ours_seconds": our_seconds,
            "ratio": hf_seconds / our_seconds, "same_generations": same,
            "outside_forward": 1 - our_clock.seconds / our_seconds,
            "hf_outside_forward": 1 - hf_clock.seconds / hf_seconds,
            "outside_generate": 1 - in_generate[0] / our_seconds}


def compress_once_vs_per_question(model_dir: Path, data: Path) -> dict[str, float]:
    """Selective Context over contexts with 5 questions each: once per context vs per question."""
    import pyarrow.parquet as pq
    from transformers import AutoTokenizer

    from bench.compressors import TargetModel, build_compressor
    from bench.harness.frontend import CompressionFrontEnd

    rows = pq.read_table(data / "squad" / "test.parquet").to_pylist()
    contexts = sorted({row["context"] for row in rows})
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    target = TargetModel(str(model_dir), tokenizer)
    compressor = build_compressor("selective_context", target,
                                  {"rate": 0.5, "compressor_model": str(model_dir)})
    requests = [_FakeRequest(context, f"question {q} about it?")
                for context in contexts for q in range(5)]
    compressor.compress([_FakeRequest(contexts[0], "warm-up").as_compression_request()])
    runs: dict[str, list[float]] = {"per_question": [], "once": []}
    for _ in range(3):
        for mode, times in runs.items():
            frontend = CompressionFrontEnd(compressor, target, cache=None)
            frontend.question_aware = mode == "per_question"
            start = time.perf_counter()
            frontend.prepare(requests)
            times.append(time.perf_counter() - start)
    timings = {mode: statistics.median(times) for mode, times in runs.items()}
    timings["compressions_once"] = len(contexts)
    timings["speedup"] = timings["per_question"] / timings["once"]
    return timings


class _FakeRequest:
    """The parts of an lm-eval Instance the front end reads."""

    task_name = "compressed_squad"
    doc_id = 0

    def __init__(self, context: str, question: str) -> None:
        self.doc = {"context": context, "question": question, "kind": "qa"}
        self.args: tuple[str, dict[str, Any]] = (
            f"Context: {context} Question: {question} Answer:", {})

    def as_compression_request(self) -> Any:
        from bench.compressors import CompressionRequest

        return CompressionRequest(self.doc["context"], self.doc["question"])


def batch_invariance(model_dir: Path, limit: int) -> dict[int, tuple[float, list[str]]]:
    from bench.lmeval.compressed_model import CompressedLM

    scores = {}
    for batch_size in (1, 4, 16):
        lm = CompressedLM(pretrained=str(model_dir), compressor="truncate", rate=0.5,
                          device="cpu", batch_size=batch_size, compression_cache="off")
        results, _ = _evaluate(lm, ["compressed_squad"], limit)
        f1 = results["results"]["compressed_squad"]["squad_f1,none"]
        scores[batch_size] = (f1, _responses(results, "compressed_squad"))
    return scores


def metric_throughput(pairs: int) -> float:
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from bench_metrics import qa_pairs  # type: ignore[import-not-found]

    from bench import metrics

    predictions, golds = qa_pairs(pairs, 0)
    start = time.perf_counter()
    metrics.batch_squad_scores(predictions, golds)
    return pairs / (time.perf_counter() - start)


@contextmanager
def _workspace(out: Path | None) -> Iterator[Path]:
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        yield out
        return
    with tempfile.TemporaryDirectory() as tmp:
        yield Path(tmp)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=12,
                        help="questions per throughput run (default 12)")
    parser.add_argument("--pairs", type=int, default=100_000,
                        help="prediction/gold pairs for the metric throughput (default 100k)")
    parser.add_argument("--out", type=Path, default=None,
                        help="keep the model and data here (default: a temporary folder)")
    args = parser.parse_args()
    from bench.demo import prepare_demo
    from bench.lmeval.plugin import register

    register()
    with _workspace(args.out) as work:
        model_dir, data_dir = prepare_demo(work)
        os.environ["COMPRESSBENCH_DATA"] = str(data_dir)
        speed = throughput_vs_hf(model_dir, args.questions)
        once = compress_once_vs_per_question(model_dir, data_dir)
        batches = batch_invariance(model_dir, args.questions)
    rate = metric_throughput(args.pairs)
    identical = len({(f1, tuple(r)) for f1, r in batches.values()}) == 1
    print(f"{'measure':58s} {'value':>14s} target")
    label = f"throughput compressed(none) / hf (same answers: {speed['same_generations']})"
    print(f"{label:58s} {speed['ratio']:14.3f} >= 1.0")
    print(f"{'  hf seconds / compressed seconds':58s} "
          f"{speed['hf_seconds']:6.2f} / {speed['ours_seconds']:5.2f}")
    print(f"{'compress-once speed-up vs per question (5 q/context, median of 3)':58s} "
          f"{once['speedup']:14.2f} >= 3x")
    print(f"{'  once / per-question seconds':58s} "
          f"{once['once']:6.2f} / {once['per_question']:5.2f}")
    print(f"{'time outside model forward passes / total (compressed)':58s} "
          f"{speed['outside_forward']:14.1%} <= 5%")
    print(f"{'  the same for stock hf (generate loop, lm-eval)':58s} "
          f"{speed['hf_outside_forward']:14.1%}")
    print(f"{'time outside the hf generation loop / total (compressed)':58s} "
          f"{speed['outside_generate']:14.1%}")
    print(f"{'identical scores at batch 1, 4, 16':58s} {identical!s:>14s} "
          f"(F1 {', '.join(f'{b}: {f:.4f}' for b, (f, _) in batches.items())})")
    print(f"{'metric scoring throughput (SQuAD EM+F1 pairs/s, 100k pairs)':58s} {rate:14,.0f}")


if __name__ == "__main__":
    main()
