"""Does a trained gist or AutoCompressor summary carry its context? The dev loss with each
example's own compressed context against the loss with another example's, after a short
training run on CPU.

    python benchmarks/bench_information_flow.py [--method gist autocompressor]
        [--base ../shared/data/stories260K_hf] [--steps 40 150] [--num-mem 4] [--seed 0]

Training data: 200 story texts of 48 tokens sampled (seeded) from the base model itself, 16
held out as dev.
- gist: ``pretrain`` (regeneration): the loss of the story after the gist tokens, with the
  story itself or the next dev story before the gist tokens.
- autocompressor: ``finetune`` on "How does the story begin?" (answer: the story's first three
  words): the loss of the answer only, read after the summaries of the story or of the next
  dev story.
Each run: lr 1e-3, batch 4, 2 warm-up steps. Compressed tokens that carry their context give
the own-context loss a clearly lower value; equal losses mean the fall in loss during
training came from the decoder alone.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from bench.compressors.soft.autocompressor.training import build_autocompressor
from bench.compressors.soft.gist.training import build_gist
from bench.training.config import TrainConfig
from bench.training.data import load_examples
from bench.training.example import Example
from bench.training.lm_methods import LmBuilt
from bench.training.loop import train
from bench.training.method import IGNORE, pad_rows, summed_loss
from bench.training.synthetic import sample_texts, write_opening_qa, write_text_corpus

DEFAULT_BASE = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "stories260K_hf"
Rows = list[tuple[list[int], list[int]]]
BUILDERS: dict[str, Callable[[TrainConfig, bool], LmBuilt]] = {
    "gist": build_gist, "autocompressor": build_autocompressor}


def _gist_rows(built: Any, dev: list[Example]) -> tuple[Rows, Rows]:
    rows = [built.collate.example_ids(example) for example in dev]
    swapped = [(rows[(i + 1) % len(rows)][0], rows[i][1]) for i in range(len(rows))]
    own = [(prompt + answer, [IGNORE] * len(prompt) + answer) for prompt, answer in rows]
    other = [(prompt + answer, [IGNORE] * len(prompt) + answer) for prompt, answer in swapped]
    return own, other


def _summary_rows(built: Any, dev: list[Example]) -> tuple[Rows, Rows]:
    collate = built.collate
    contexts = [collate.tokenizer(example.context)["input_ids"][:collate.max_context_tokens]
                for example in dev]
    answers = []
    for context, example in zip(contexts, dev, strict=True):
        ids, labels = collate.example_ids(example)
        answers.append((ids[len(context):], labels[len(context):]))

    def rows(shift: int) -> Rows:
        chosen = [contexts[(i + shift) % len(dev)] for i in range(len(dev))]
        return [(context + ids, [IGNORE] * len(context) + labels)
                for context, (ids, labels) in zip(chosen, answers, strict=True)]

    return rows(0), rows(1)


def _loss(built: Any, method: str, rows: Rows) -> float:
    batch: Any = (built.collate.substeps(rows) if method == "autocompressor" else
                  pad_rows(rows, int(built.tokenizer.eos_token_id)))
    with torch.no_grad():
        return float(summed_loss(built.module, batch)) / float(batch.target_tokens)


def own_and_other(config: TrainConfig, dev: list[Example]) -> tuple[float, float]:
    """Dev loss of the trained run in ``config.out``: own context, another example's."""
    final = str(Path(config.out) / "final")
    base = final if config.method == "gist" else config.base
    trained = TrainConfig(**{**config.as_json(), "lora_targets": tuple(config.lora_targets),
                             "base": base, "init_from": final})
    built = BUILDERS[config.method](trained, False)
    built.module.eval()
    pick = _gist_rows if config.method == "gist" else _summary_rows
    own, other = pick(built, dev)
    return _loss(built, config.method, own), _loss(built, config.method, other)


def run_method(method: str, corpus: Path, work: Path, args: argparse.Namespace) -> None:
    stage = "pretrain" if method == "gist" else "finetune"
    data = corpus if stage == "pretrain" else write_opening_qa(corpus, work / "qa")
    print(f"\n{method} ({stage}, {args.num_mem} compressed tokens)")
    print(f"{'steps':>6} {'own':>8} {'other':>8} {'other / own':>12}")
    for steps in args.steps:
        config = TrainConfig(stage=stage, method=method, base=str(args.base), data=str(data),
                             out=str(work / f"{method}{steps}"), num_mem=args.num_mem,
                             steps=steps, lr=1e-3, batch_size=4, warmup_steps=2, eval_every=0,
                             max_context_tokens=64, max_answer_tokens=64 if stage ==
                             "pretrain" else 16, dev_size=16, seed=args.seed, progress=False)
        train(config)
        _, dev = load_examples(config.data, config.kind, None, 16, args.seed, None)
        own, other = own_and_other(config, dev)
        print(f"{steps:>6} {own:>8.4f} {other:>8.4f} {other / own:>12.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--method", nargs="+", choices=sorted(BUILDERS),
                        default=["gist", "autocompressor"], help="methods (default both)")
    parser.add_argument("--base", type=Path, default=DEFAULT_BASE, help="pretrained base model")
    parser.add_argument("--steps", type=int, nargs="+", default=[40, 150],
                        help="optimizer steps of each run (default 40 150)")
    parser.add_argument("--num-mem", type=int, default=4,
                        help="gist tokens / summary length (default 4)")
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
        for method in args.method:
            run_method(method, corpus, Path(tmp), args)


if __name__ == "__main__":
    main()
