"""Throughput of every metric in bench.metrics on seeded synthetic prediction/gold pairs.

    python benchmarks/bench_metrics.py [--pairs 100000] [--seed 0] [--regen-words 40]

QA pairs: predictions of 0-6 words (about 5% empty, 30% copying a gold), 1-3 golds of 1-6
words, drawn from a 2,000-word vocabulary with punctuation and capitals. Regeneration pairs:
a reference of ``--regen-words`` words (with sentence dots) and a prediction that copies it
with about 20% of the words replaced. Prints a table of pairs per second.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable, Sequence

from bench import metrics

Pair = tuple[str, object]


def _vocabulary(rng: random.Random) -> list[str]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = ["".join(rng.choice(letters) for _ in range(rng.randint(2, 9))) for _ in range(2000)]
    words += ["the", "a", "an", "The", "Paris,", "U.S.", "1999", "(x)", "don't"]
    return words


def qa_pairs(n: int, seed: int) -> tuple[list[str], list[list[str]]]:
    """Seeded synthetic QA predictions and gold lists."""
    rng = random.Random(seed)
    vocab = _vocabulary(rng)
    predictions, golds = [], []
    for _ in range(n):
        answers = [
            " ".join(rng.choices(vocab, k=rng.randint(1, 6))) for _ in range(rng.randint(1, 3))
        ]
        roll = rng.random()
        if roll < 0.05:
            prediction = ""
        elif roll < 0.35:
            prediction = rng.choice(answers)
        else:
            prediction = " ".join(rng.choices(vocab, k=rng.randint(1, 6)))
        predictions.append(prediction)
        golds.append(answers)
    return predictions, golds


def regeneration_pairs(n: int, seed: int, words: int) -> tuple[list[str], list[str]]:
    """Seeded synthetic regeneration predictions and references."""
    rng = random.Random(seed + 1)
    vocab = _vocabulary(rng)
    predictions, references = [], []
    for _ in range(n):
        ref = [rng.choice(vocab) + ("." if rng.random() < 0.08 else "") for _ in range(words)]
        pred = [w if rng.random() > 0.2 else rng.choice(vocab) for w in ref]
        references.append(" ".join(ref))
        predictions.append(" ".join(pred))
    return predictions, references


def _time(
    fn: Callable[[str, object], float], preds: Sequence[str], golds: Sequence[object]
) -> float:
    metrics.normalize_answer.cache_clear()
    start = time.perf_counter()
    for p, g in zip(preds, golds, strict=True):
        fn(p, g)
    return len(preds) / (time.perf_counter() - start)


def main() -> None:
    """Run every metric once over the pairs and print pairs/s."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=100_000, help="pairs per metric")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic data")
    parser.add_argument("--regen-words", type=int, default=40, help="words per regeneration text")
    args = parser.parse_args()
    qa_p, qa_g = qa_pairs(args.pairs, args.seed)
    re_p, re_r = regeneration_pairs(args.pairs, args.seed, args.regen_words)
    rows: list[tuple[str, str, float]] = []
    for name in ("squad_exact_match", "squad_f1", "exact_match_500x", "f1_500x"):
        rows.append((name, "QA", _time(getattr(metrics, name), qa_p, qa_g)))
    for name in metrics.REGENERATION_METRICS:
        rows.append((name, f"regen {args.regen_words}w", _time(getattr(metrics, name), re_p, re_r)))
    start = time.perf_counter()
    metrics.batch_squad_scores(qa_p, qa_g)
    metrics.batch_qa_500x_scores(qa_p, qa_g)
    rows.append(("all 4 QA (batch)", "QA", args.pairs / (time.perf_counter() - start)))
    print(f"{args.pairs} pairs per metric, seed {args.seed}")
    print(f"{'metric':<20} {'data':<12} {'pairs/s':>12}")
    for name, data, rate in rows:
        print(f"{name:<20} {data:<12} {rate:>12,.0f}")


if __name__ == "__main__":
    main()
