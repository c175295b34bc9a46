"""Learning curve of a short 500x pretraining run on CPU with the real tiny Llama.

    python benchmarks/bench_training_curve.py [--base ../shared/data/stories260K_hf]
        [--method 500x] [--steps 200] [--num-mem 4] [--seed 0]

Training data: 400 story texts of up to 48 tokens sampled (seeded) from the base model
itself, 32 held out as dev. Prints the dev regeneration loss at steps 0/50/100/200 and the
Rouge-L-F (rouge_score, F-measure) of greedy regenerations of the dev texts before/after.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from bench.training.config import TrainConfig, preset_values
from bench.training.loop import train
from bench.training.synthetic import sample_texts, write_text_corpus

DEFAULT_BASE = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "stories260K_hf"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", type=Path, default=DEFAULT_BASE, help="pretrained base model")
    parser.add_argument("--method", choices=("500x", "icae"), default="500x")
    parser.add_argument("--steps", type=int, default=200, help="optimizer steps")
    parser.add_argument("--num-mem", type=int, default=4, help="memory slots k")
    parser.add_argument("--seed", type=int, default=0, help="data and initialisation seed")
    args = parser.parse_args()
    if not args.base.is_dir():
        raise SystemExit(f"base model not found: {args.base}")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(1)
    model = AutoModelForCausalLM.from_pretrained(str(args.base))
    model.eval()  # type: ignore[no-untyped-call]
    tokenizer = AutoTokenizer.from_pretrained(str(args.base))
    texts = sample_texts(model, tokenizer, 400, 48, seed=args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        corpus = write_text_corpus(texts, Path(tmp) / "corpus", dev=32)
        values = {**preset_values("tiny-cpu", "pretrain"), "method": args.method,
                  "num_mem": args.num_mem, "steps": args.steps, "eval_every": 50,
                  "eval_generate": 32, "dev_size": 32, "save_every": args.steps,
                  "seed": args.seed, "progress": False}
        config = TrainConfig(stage="pretrain", base=str(args.base.resolve()), data=str(corpus),
                             out=str(Path(tmp) / "run"), **values)
        began = time.perf_counter()
        result = train(config)
        seconds = time.perf_counter() - began
    print(f"\n{args.method} pretraining, k={args.num_mem}, {args.steps} steps, "
          f"{seconds:.1f} s wall ({result.train_tokens / result.train_seconds:.0f} tokens/s)")
    print(f"{'step':>6} {'dev loss':>9} {'Rouge-L-F':>10}")
    for record in result.history:
        if record["step"] in (0, 50, 100, 200, args.steps):
            print(f"{record['step']:>6} {record['dev_loss']:>9.4f} {record['rouge_l_f']:>10.4f}")


if __name__ == "__main__":
    main()
