"""Training throughput (tokens/s) and model FLOPs utilisation of the soft-compressor loop.

    python benchmarks/bench_training_throughput.py [--size 1b|tiny] [--method 500x]
        [--steps 20] [--batch-size 4] [--context-tokens 500] [--num-mem 4]
        [--peak-tflops 989] [--gradient-checkpointing]

Builds a randomly initialised Llama (``1b``: hidden 2048, 16 layers, 32 heads, 8 KV heads,
MLP 8192, vocabulary 32,000, about 1.1B parameters; ``tiny``: hidden 64, 2 layers), a
tokenizer and seeded synthetic texts of about ``--context-tokens`` tokens, then runs
:func:`bench.training.loop.train` (the code path of the tests; bf16 autocast on CUDA) and
reports tokens/s (encoder + decoder tokens) and MFU = 6 * N * tokens/s / peak, N = base
parameters. With a frozen base model the backward pass skips weight gradients, so the true
work is closer to 4 * N per token; both ratios are printed. ``--size`` defaults to ``1b`` on
CUDA and ``tiny`` elsewhere; ``--peak-tflops`` is the device's dense bf16 peak (989 for an
H100 SXM).
"""

from __future__ import annotations

import argparse
import random
import tempfile
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    cuda = torch.cuda.is_available()
    parser.add_argument("--size", choices=sorted(SIZES), default="1b" if cuda else "tiny",
                        help="model size (default: 1b on CUDA, tiny otherwise)")
    parser.add_argument("--method", choices=("500x", "icae"), default="500x")
    parser.add_argument("--steps", type=int, default=20, help="optimizer steps timed")
    parser.add_argument("--batch-size", type=int, default=4, help="examples per step")
    parser.add_argument("--context-tokens", type=int, default=500, help="context length")
    parser.add_argument("--num-mem", type=int, default=4, help="memory slots k")
    parser.add_argument("--peak-tflops", type=float, default=989.0,
                        help="device peak dense bf16 TFLOP/s for MFU")
    parser.add_argument("--gradient-checkpointing", action="store_true",
                        help="recompute activations in the backward pass")
    args = parser.parse_args()
    texts = _texts(args.batch_size * (args.steps + 4) + 64, int(args.context_tokens / 1.6), 0)
    with tempfile.TemporaryDirectory() as tmp:
        import pandas as pd

        corpus = Path(tmp) / "corpus"
        corpus.mkdir()
        pd.DataFrame({"text": texts[64:]}).to_parquet(corpus / "train.parquet")
        pd.DataFrame({"text": texts[:8]}).to_parquet(corpus / "dev.parquet")
        dtype = torch.bfloat16 if cuda else torch.float32
        base, n_params = build_base(args.size, texts, Path(tmp) / "base", dtype)
        config = TrainConfig(stage="pretrain", method=args.method, base=str(base),
                             data=str(corpus), out=str(Path(tmp) / "run"),
                             num_mem=args.num_mem, steps=args.steps, lr=1e-4,
                             batch_size=args.batch_size, warmup_steps=2, eval_every=0,
                             save_every=10**9, max_context_tokens=args.context_tokens,
                             gradient_checkpointing=args.gradient_checkpointing,
                             progress=False)
        result = train(config)
    tokens_per_s = result.train_tokens / result.train_seconds
    peak = args.peak_tflops * 1e12
    device = torch.cuda.get_device_name() if cuda else "cpu"
    print(f"\n{'device':<24} {'size':>5} {'params':>10} {'steps':>6} {'tokens/s':>10} "
          f"{'MFU(6N)':>8} {'MFU(4N)':>8}")
    print(f"{device:<24} {args.size:>5} {n_params / 1e6:>9.1f}M {result.step:>6} "
          f"{tokens_per_s:>10.0f} {6 * n_params * tokens_per_s / peak:>8.2%} "
          f"{4 * n_params * tokens_per_s / peak:>8.2%}")


if __name__ == "__main__":
    main()
