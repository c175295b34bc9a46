"""One soft compressor, one set of questions: answered in process and by a vLLM server.

    python benchmarks/bench_served_soft.py --data ~/cb-data --pretrained MODEL \\
        --compressor icae --options variant=v2,checkpoint=FILE [--url URL | --start-vllm] \\
        [--tasks compressed_squad] [--limit 200] [--dtype bfloat16] [--batch-size 8]

Runs the task's first ``--limit`` questions twice through lm-eval: with ``--model
compressed`` (the compressor and the model's greedy decoding in this process) and with
``--model compressed_completions`` answering from prompt embeddings, sent to the vLLM server at
``--url`` or to one this script starts (``--start-vllm``: ``vllm serve MODEL
--enable-prompt-embeds``; vLLM 0.11 or later must be installed). Prints, side by side: answers
equal to the in-process ones, answering throughput (questions per second of answering:
lm-eval's generate calls less the compressor's time, so that both count the same work),
compression seconds, and the base64 bytes of prompt embeddings per question.

A device script: it needs the model's weights (in process and, for the served run, on the
client side) and a GPU to be meaningful. The in-process model is freed before the served run.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.substrate.errors import InputError, add_debug_flag, run_cli
from bench.substrate.help import RawHelpFormatter

READY_TIMEOUT_SECONDS = 900.0
POLL_SECONDS = 5.0


@dataclass
class Stopwatch:
    """Seconds spent in the calls of one wrapped method, summed."""

    seconds: float = 0.0

    def wrap(self, method: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            began = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - began

        return timed


@dataclass(frozen=True)
class RunSummary:
    """One run: its answers by (task, doc id), answering and compression seconds, and what
    the served run sent."""

    answers: dict[tuple[str, int], Any]
    answer_seconds: float
    compress_seconds: float
    sent_bytes: float | None = None

    @property
    def questions(self) -> int:
        return len(self.answers)

    @property
    def questions_per_second(self) -> float:
        return self.questions / self.answer_seconds if self.answer_seconds > 0 else 0.0


def parse_options(text: str) -> dict[str, str]:
    """``KEY=VALUE,...`` compressor options (empty: none)."""
    options: dict[str, str] = {}
    for part in filter(None, (piece.strip() for piece in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep or not key:
            raise InputError(f"expected KEY=VALUE, got {part!r}", field="--options")
        options[key] = value
    return options


def equal_answers(local: RunSummary, served: RunSummary) -> int:
    """Questions whose served answer is the in-process one."""
    return sum(served.answers.get(key) == answer for key, answer in local.answers.items())


def table(local: RunSummary, served: RunSummary) -> str:
    """The side-by-side comparison."""
    per_question = (f"{served.sent_bytes / served.questions / 1e3:,.1f} kB"
                    if served.sent_bytes is not None and served.questions else "-")
    rows = [
        ("questions", str(local.questions), str(served.questions)),
        ("answers equal to in-process", "-", f"{equal_answers(local, served)}/{local.questions}"),
        ("answering seconds", f"{local.answer_seconds:.2f}", f"{served.answer_seconds:.2f}"),
        ("questions/s", f"{local.questions_per_second:.2f}",
         f"{served.questions_per_second:.2f}"),
        ("compression seconds", f"{local.compress_seconds:.2f}",
         f"{served.compress_seconds:.2f}"),
        ("prompt embeddings per question", "-", per_question),
    ]
    width = max(len(name) for name, _, _ in rows)
    lines = [f"{'':{width}}  {'in process':>12}  {'served':>12}"]
    lines += [f"{name:{width}}  {a:>12}  {b:>12}" for name, a, b in rows]
    ratio = (served.questions_per_second / local.questions_per_second
             if local.questions_per_second else 0.0)
    lines.append(f"served / in-process throughput: {ratio:.2f}x")
    return "\n".join(lines)


def evaluate(lm: Any, tasks: Sequence[str], limit: int) -> RunSummary:
    """lm-eval on ``lm`` (log_samples), timing its generate calls and its compressor."""
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    from bench.lmeval.plugin import register

    register()
    answering, compressing = Stopwatch(), Stopwatch()
    lm.generate_until = answering.wrap(lm.generate_until)
    lm.frontend.compressor.compress = compressing.wrap(lm.frontend.compressor.compress)
    results = simple_evaluate(model=lm, tasks=list(tasks), limit=limit, log_samples=True,
                              task_manager=TaskManager(include_defaults=False))
    assert results is not None
    answers = {(task, int(sample["doc_id"])): sample["resps"]
               for task, samples in results["samples"].items() for sample in samples}
    served = results["config"].get("compressbench", {}).get("served") or {}
    return RunSummary(answers, answering.seconds - compressing.seconds, compressing.seconds,
                      served.get("prompt_embeds_bytes"))


def local_arguments(args: argparse.Namespace) -> dict[str, Any]:
    """The ``hf`` backend's arguments both runs load the model with."""
    return {"pretrained": args.pretrained, "dtype": args.dtype, "device": args.device,
            "batch_size": args.batch_size}


def in_process(args: argparse.Namespace) -> RunSummary:
    import gc

    import torch

    from bench.lmeval.compressed_model import CompressedLM

    lm = CompressedLM(compressor=args.compressor, compression_cache="off",
                      **local_arguments(args), **parse_options(args.options))
    summary = evaluate(lm, args.tasks, args.limit)
    del lm
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return summary


def served(args: argparse.Namespace, url: str) -> RunSummary:
    from bench.lmeval.api_models import CompressedCompletionsLM

    lm = CompressedCompletionsLM(model=args.served_model or args.pretrained, base_url=url,
                                 compressor=args.compressor, compression_cache="off",
                                 num_concurrent=args.num_concurrent, timeout=args.timeout,
                                 **local_arguments(args), **parse_options(args.options))
    return evaluate(lm, args.tasks, args.limit)


def vllm_command(args: argparse.Namespace) -> list[str]:
    """``vllm serve`` of the model with prompt embeddings enabled."""
    command = ["vllm", "serve", args.pretrained, "--enable-prompt-embeds", "--port",
               str(args.port), "--dtype", args.dtype, "--gpu-memory-utilization",
               str(args.gpu_memory_utilization)]
    if args.served_model:
        command += ["--served-model-name", args.served_model]
    if args.max_model_len:
        command += ["--max-model-len", str(args.max_model_len)]
    return command


@contextmanager
def vllm_server(args: argparse.Namespace) -> Iterator[str]:
    """Start ``vllm serve``, wait until it lists its model, yield the completions URL."""
    process = subprocess.Popen(vllm_command(args))
    base = f"http://127.0.0.1:{args.port}/v1"
    try:
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while not _lists_models(base):
            if process.poll() is not None:
                raise InputError(f"vllm serve ended with status {process.returncode}",
                                 field="--start-vllm")
            if time.monotonic() > deadline:
                raise InputError(f"vllm serve did not answer within {READY_TIMEOUT_SECONDS:.0f} "
                                 "s", field="--start-vllm")
            time.sleep(POLL_SECONDS)
        yield f"{base}/completions"
    finally:
        process.terminate()
        process.wait(timeout=60)


def _lists_models(base: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base}/models", timeout=5) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bench_served_soft.py", description=__doc__,
                                formatter_class=RawHelpFormatter)
    p.add_argument("--data", type=Path, required=True,
                   help="prepared benchmarks (COMPRESSBENCH_DATA), in the model's tokens")
    p.add_argument("--pretrained", required=True, help="the model: hub id or folder")
    p.add_argument("--compressor", required=True,
                   help="a compressor served from prompt embeddings (icae, cram, ...)")
    p.add_argument("--options", default="", help="its options, KEY=VALUE,...")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--url", help="the server's completions endpoint, .../v1/completions")
    where.add_argument("--start-vllm", action="store_true",
                       help="start vllm serve --enable-prompt-embeds here (on --port)")
    p.add_argument("--served-model", help="the server's model name (default: --pretrained)")
    p.add_argument("--tasks", nargs="+", default=["compressed_squad"], help="lm-eval tasks")
    p.add_argument("--limit", type=int, default=200, help="questions per task")
    p.add_argument("--dtype", default="bfloat16", help="model dtype, both runs and the server")
    p.add_argument("--device", default="cuda", help="where this process runs the model")
    p.add_argument("--batch-size", type=int, default=8,
                   help="in-process decoding batch; prompts per served request")
    p.add_argument("--num-concurrent", type=int, default=16, help="requests in flight")
    p.add_argument("--timeout", type=int, default=600, help="seconds per request")
    p.add_argument("--port", type=int, default=8000, help="--start-vllm: the server's port")
    p.add_argument("--gpu-memory-utilization", type=float, default=0.45,
                   help="--start-vllm: vLLM's share of the GPU (this process holds a copy of "
                        "the model too)")
    p.add_argument("--max-model-len", type=int, help="--start-vllm: vLLM's context length")
    p.add_argument("--json", type=Path, help="also write the numbers as JSON")
    add_debug_flag(p)
    return p


def _run(argv: Sequence[str]) -> int:
    args = parser().parse_args(argv)
    if not args.data.is_dir():
        raise InputError("no such folder", args.data, field="--data")
    os.environ["COMPRESSBENCH_DATA"] = str(args.data)
    local = in_process(args)
    if args.start_vllm:
        with vllm_server(args) as url:
            remote = served(args, url)
    else:
        remote = served(args, args.url)
    print(table(local, remote), flush=True)
    if args.json is not None:
        from bench.substrate.atomic import atomic_write_json

        atomic_write_json(args.json, {
            "compressor": args.compressor, "options": args.options,
            "pretrained": args.pretrained, "questions": local.questions,
            "answers_equal": equal_answers(local, remote),
            "in_process": {"answer_seconds": local.answer_seconds,
                           "compress_seconds": local.compress_seconds,
                           "questions_per_second": local.questions_per_second},
            "served": {"answer_seconds": remote.answer_seconds,
                       "compress_seconds": remote.compress_seconds,
                       "questions_per_second": remote.questions_per_second,
                       "prompt_embeds_bytes": remote.sent_bytes}})
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(_run, argv, failures=(OSError,))


if __name__ == "__main__":
    sys.exit(main())
