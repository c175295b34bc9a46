"""Throughput of every metric in bench.metrics on seeded synthetic prediction/gold pairs.

    python benchmarks/bench_metrics.py [--pairs 100000] [--seed 0] [--regen-words 40]

QA pairs: predictions of 0-6 words (about 5% empty, 30% copying a gold), 1-3 golds of 1-6
words, drawn from a 2,000-word vocabulary with punctuation and capitals. Regeneration pairs:
a reference of ``--regen-words`` words (with sentence dots) and a prediction that copies it
with about 20% of the words replaced. Prints a table of pairs per second, and the one-pass
SQuAD EM+F1 (``squad_scores``, each gold normalised once) against the plain official-style
loop (``normalize_answer`` re-run for every gold and metric, no caching), alternated and warmed
up, as a ratio.
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import string
import time
from collections import Counter
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


def _official_normalize(text: str) -> str:
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def _official_f1(prediction: str, gold: str) -> float:
    predicted, expected = _official_normalize(prediction).split(), _official_normalize(gold).split()
    same = sum((Counter(predicted) & Counter(expected)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(predicted), same / len(expected)
    return 2 * precision * recall / (precision + recall)


def official_loop(preds: Sequence[str], golds: Sequence[list[str]]) -> None:
    """EM and F1 as the official SQuAD v1.1 script computes them: two passes, no caching."""
    for prediction, answers in zip(preds, golds, strict=True):
        max(float(_official_normalize(prediction) == _official_normalize(g)) for g in answers)
        max(_official_f1(prediction, g) for g in answers)


def one_pass(preds: Sequence[str], golds: Sequence[list[str]]) -> None:
    metrics.normalize_answer.cache_clear()
    metrics._squad_tokens.cache_clear()
    for prediction, answers in zip(preds, golds, strict=True):
        metrics.squad_scores(prediction, answers)


def compare_squad(preds: Sequence[str], golds: Sequence[list[str]], repeats: int) -> None:
    """Alternate the two paths (after one warm-up each); print medians and their ratio."""
    timings: dict[str, list[float]] = {"official loop": [], "one pass": []}
    runners = {"official loop": official_loop, "one pass": one_pass}
    for name in runners:
        runners[name](preds[:1000], golds[:1000])
    for round_ in range(repeats):
        order = list(runners) if round_ % 2 == 0 else list(reversed(runners))
        for name in order:
            start = time.perf_counter()
            runners[name](preds, golds)
            timings[name].append(time.perf_counter() - start)
    medians = {name: statistics.median(values) for name, values in timings.items()}
    for name, seconds in medians.items():
        print(f"{name:<20} {'QA':<12} {len(preds) / seconds:>12,.0f}")
    print(f"one pass / official loop throughput: "
          f"{medians['official loop'] / medians['one pass']:.2f}x (median of {repeats})")


def main() -> None:
    """Run every metric once over the pairs and print pairs/s."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=100_000, help="pairs per metric")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic data")
    parser.add_argument("--regen-words", type=int, default=40, help="words per regeneration text")
    parser.add_argument("--repeats", type=int, default=3,
                        help="alternated runs of the SQuAD comparison (median reported)")
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
    compare_squad(qa_p, qa_g, args.repeats)


if __name__ == "__main__":
    main()
