"""Does a trained gist carry its context? Dev loss with each example's own gist tokens against
the loss with another example's, after a short gist pretraining run on CPU.

    python benchmarks/bench_gist_information.py [--base ../shared/data/stories260K_hf]
        [--steps 40 150] [--num-mem 4] [--seed 0]

Training data: 200 story texts of 48 tokens sampled (seeded) from the base model itself, 16
held out as dev. For each number of steps, one run of ``bench.train pretrain --method gist``
(lr 1e-3, batch 4), then the dev regeneration loss (answer tokens after the gists) twice:
with each example's own context before its gist tokens, and with the next dev example's
context there instead (the same target text). A gist that carries its context gives the first
a clearly lower loss; equal losses mean that the fall in loss came from the decoder alone.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import torch

from bench.compressors.soft._model import Example
from bench.training.config import TrainConfig
from bench.training.data import load_examples
from bench.training.lm_methods import build_gist
from bench.training.loop import train
from bench.training.method import TokenBatch, summed_loss
from bench.training.synthetic import sample_texts, write_text_corpus

DEFAULT_BASE = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "stories260K_hf"


def dev_losses(config: TrainConfig, dev: list[Example]) -> tuple[float, float]:
    """(own-context, other-context) mean token loss of the trained run in ``config.out``."""
    final = Path(config.out) / "final"
    trained = TrainConfig(**{**config.as_json(), "lora_targets": tuple(config.lora_targets),
                             "base": str(final), "init_from": str(final)})
    built = build_gist(trained, False)
    built.module.eval()
    rows = [built.collate.example_ids(example) for example in dev]
    swapped = [(rows[(index + 1) % len(rows)][0], rows[index][1])
               for index in range(len(rows))]
    return _loss(built, rows), _loss(built, swapped)


def _loss(built: Any, rows: list[tuple[list[int], list[int]]]) -> float:
    width = max(len(prompt) + len(answer) for prompt, answer in rows)
    ids = torch.full((len(rows), width), 0, dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    valid = torch.zeros((len(rows), width), dtype=torch.long)
    for row, (prompt, answer) in enumerate(rows):
        ids[row, :len(prompt) + len(answer)] = torch.tensor(prompt + answer)
        labels[row, len(prompt):len(prompt) + len(answer)] = torch.tensor(answer)
        valid[row, :len(prompt) + len(answer)] = 1
    batch = TokenBatch(ids, labels, valid)
    with torch.no_grad():
        total = float(summed_loss(built.module, batch))
    return total / batch.target_tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", type=Path, default=DEFAULT_BASE, help="pretrained base model")
    parser.add_argument("--steps", type=int, nargs="+", default=[40, 150],
                        help="optimizer steps of each run (default 40 150)")
    parser.add_argument("--num-mem", type=int, default=4, help="gist tokens (default 4)")
    parser.add_argument("--seed", type=int, default=0, help="data and training seed (default 0)")
    args = parser.parse_args()
    if not args.base.is_dir():
        raise SystemExit(f"base model not found: {args.base}")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(1)
    model = AutoModelForCausalLM.from_pretrained(str(args.base)).eval()  # type: ignore[no-untyped-call]
    tokenizer = AutoTokenizer.from_pretrained(str(args.base))
    with tempfile.TemporaryDirectory() as tmp:
        texts = sample_texts(model, tokenizer, 200, 48, seed=args.seed)
        corpus = write_text_corpus(texts, Path(tmp) / "corpus", dev=16)
        print(f"{'steps':>6} {'own gist':>9} {'other gist':>11} {'other / own':>12}")
        for steps in args.steps:
            config = TrainConfig(stage="pretrain", method="gist", base=str(args.base),
                                 data=str(corpus), out=str(Path(tmp) / f"run{steps}"),
                                 num_mem=args.num_mem, steps=steps, lr=1e-3, batch_size=4,
                                 warmup_steps=2, eval_every=0, max_context_tokens=64,
                                 max_answer_tokens=64, dev_size=16, seed=args.seed,
                                 progress=False)
            train(config)
            _, dev = load_examples(config.data, config.kind, None, 16, args.seed, None)
            own, other = dev_losses(config, dev)
            print(f"{steps:>6} {own:>9.4f} {other:>11.4f} {other / own:>12.4f}")


if __name__ == "__main__":
    main()
