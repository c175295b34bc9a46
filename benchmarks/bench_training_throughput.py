"""Training throughput (tokens/s) and model FLOPs utilisation of the soft-compressor loop.

    python benchmarks/bench_training_throughput.py [--size 1b|tiny] [--method 500x]
        [--steps 20] [--batch-size 4] [--grad-accum 1] [--context-tokens 500] [--num-mem 4]
        [--peak-tflops 989] [--gradient-checkpointing] [--workdir DIR]
    accelerate launch --config_file configs/accelerate/fsdp.yaml --num_processes 1 \
        benchmarks/bench_training_throughput.py --workdir /tmp/tp   # any strategy

Builds a randomly initialised Llama (``1b``: hidden 2048, 16 layers, 32 heads, 8 KV heads,
MLP 8192, vocabulary 32,000, about 1.1B parameters; ``tiny``: hidden 64, 2 layers), a
tokenizer and seeded synthetic texts of about ``--context-tokens`` tokens (the encoder length:
``context_length`` follows it), then runs :func:`bench.training.loop.train` (the code path of
the tests; bf16 autocast on CUDA) and reports tokens/s (encoder + memory + decoder tokens, all
processes; "steady" leaves out the first two steps) and MFU = F * N * tokens/s / (peak x
processes), N = base parameters without the input embedding. With a frozen base model the
backward pass skips weight gradients, so the work is about F = 4 per parameter and token
(``bench.train`` reports this one); the conventional F = 6 is printed too. ``--size``
defaults to ``1b`` on CUDA and ``tiny`` elsewhere; ``--peak-tflops`` is the device's dense
bf16 peak (looked up for known GPUs, e.g. 989 for H100/H200 SXM).
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from bench.training.config import TrainConfig
from bench.training.loop import train

SIZES: dict[str, dict[str, Any]] = {
    "1b": {"hidden_size": 2048, "num_hidden_layers": 16, "num_attention_heads": 32,
           "num_key_value_heads": 8, "intermediate_size": 8192, "vocab_size": 32000},
    "tiny": {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
             "num_key_value_heads": 2, "intermediate_size": 128, "vocab_size": 512},
}


def _texts(count: int, words: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocabulary = ["".join(rng.choice(letters) for _ in range(rng.randint(2, 8)))
                  for _ in range(3000)]
    return [" ".join(rng.choices(vocabulary, k=words)) + "." for _ in range(count)]


def build_base(size: str, texts: list[str], folder: Path, dtype: torch.dtype) -> tuple[Path, int]:
    """Save a random Llama of ``size`` with a BPE tokenizer trained on ``texts``."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from bench.tiny import train_tokenizer

    train_tokenizer(texts[:2000], folder, vocab_size=min(SIZES[size]["vocab_size"], 8000))
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    config = LlamaConfig(**SIZES[size], max_position_embeddings=2048,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).to(dtype)  # type: ignore[arg-type]
    model.save_pretrained(str(folder), safe_serialization=True)
    return folder, sum(p.numel() for p in model.parameters())


def _steady_tokens_per_second(out: Path) -> float:
    records = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    steady = records[2:] or records
    return float(sum(r["tokens"] for r in steady) / sum(r["seconds"] for r in steady))


def _prepare_inputs(args: argparse.Namespace, folder: Path, dtype: torch.dtype) -> int:
    """Corpus and base model under ``folder`` (built once); returns the parameter count."""
    import pandas as pd

    from bench.training.throughput import compute_parameters

    texts = _texts(args.batch_size * args.grad_accum * (args.steps + 4) * 8 + 64,
                   int(args.context_tokens / 1.6), 0)
    corpus = folder / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"text": texts[64:]}).to_parquet(corpus / "train.parquet")
    pd.DataFrame({"text": texts[:8]}).to_parquet(corpus / "dev.parquet")
    build_base(args.size, texts, folder / "base", dtype)
    from transformers import AutoModelForCausalLM

    return compute_parameters(AutoModelForCausalLM.from_pretrained(str(folder / "base")))


def main() -> None:
    from accelerate import PartialState

    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    cuda = torch.cuda.is_available()
    parser.add_argument("--size", choices=sorted(SIZES), default="1b" if cuda else "tiny",
                        help="model size (default: 1b on CUDA, tiny otherwise)")
    parser.add_argument("--method", choices=("500x", "icae"), default="500x")
    parser.add_argument("--steps", type=int, default=20, help="optimizer steps timed")
    parser.add_argument("--batch-size", type=int, default=4, help="examples per micro-batch")
    parser.add_argument("--grad-accum", type=int, default=1, help="micro-batches per step")
    parser.add_argument("--context-tokens", type=int, default=500,
                        help="encoder length (context_length and max_context_tokens)")
    parser.add_argument("--num-mem", type=int, default=4, help="memory slots k")
    parser.add_argument("--peak-tflops", type=float, default=None,
                        help="device peak dense bf16 TFLOP/s for MFU (default: looked up)")
    parser.add_argument("--gradient-checkpointing", action="store_true",
                        help="recompute activations in the backward pass")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="folder for the model, corpus and run (default: a temporary "
                             "one on the main process's machine)")
    args = parser.parse_args()
    state = PartialState()
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.workdir or Path(tmp)
        dtype = torch.bfloat16 if cuda else torch.float32
        if state.is_main_process:
            n_params = _prepare_inputs(args, folder, dtype)
        state.wait_for_everyone()
        # The main process's folders, on the same machine for every process.
        shared = [str(folder), str(folder / f"run-{time.time_ns()}")]
        if state.num_processes > 1:
            torch.distributed.broadcast_object_list(shared, src=0)
        folder = Path(shared[0])
        config = TrainConfig(stage="pretrain", method=args.method, base=str(folder / "base"),
                             data=str(folder / "corpus"), out=shared[1],
                             num_mem=args.num_mem, steps=args.steps, lr=1e-4,
                             batch_size=args.batch_size, grad_accum=args.grad_accum,
                             warmup_steps=2, eval_every=0, save_every=10**9,
                             context_length=args.context_tokens,
                             max_context_tokens=args.context_tokens,
                             gradient_checkpointing=args.gradient_checkpointing,
                             peak_tflops=args.peak_tflops, progress=False)
        result = train(config)
        if not state.is_main_process:
            return
        steady = _steady_tokens_per_second(Path(shared[1]))
        _report(args, state, result, steady, n_params)


def _report(args: argparse.Namespace, state: Any, result: Any, steady: float,
            n_params: int) -> None:
    from bench.training.throughput import peak_tflops

    cuda = torch.cuda.is_available()
    device = torch.cuda.get_device_name() if cuda else "cpu"
    peak = args.peak_tflops or (peak_tflops(device) if cuda else None)
    print(f"\n{'device':<24} {'strategy':<12} {'procs':>5} {'size':>5} {'params':>10} "
          f"{'steps':>6} {'tokens/s':>10} {'steady':>10} {'MFU(4N)':>8} {'MFU(6N)':>8}")
    mfu4 = mfu6 = "n/a"
    if peak:
        total = peak * 1e12 * state.num_processes
        mfu4, mfu6 = (f"{f * n_params * steady / total:.2%}" for f in (4, 6))
    print(f"{device:<24} {str(state.distributed_type).split('.')[-1]:<12} "
          f"{state.num_processes:>5} {args.size:>5} {n_params / 1e6:>9.1f}M {result.step:>6} "
          f"{result.tokens_per_second:>10.0f} {steady:>10.0f} {mfu4:>8} {mfu6:>8}")


if __name__ == "__main__":
    main()
