"""Task and metric names of the compressbench lm-eval tasks, and the normalisation."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

QA_TASKS: dict[str, str] = {
    "compressed_arxivqa": "ArxivQA",
    "compressed_squad": "SQuAD",
    "compressed_relation_extraction": "RE",
    "compressed_hotpotqa": "HotpotQA",
    "compressed_race": "RACE",
}
REGENERATION_LENGTHS = (96, 192, 288, 384, 480)
REGENERATION_TASKS: dict[str, int] = {
    f"compressed_regeneration_{length}": length for length in REGENERATION_LENGTHS
}

MetricStyle = Literal["squad", "500x"]


@dataclass(frozen=True)
class MetricNames:
    """Which per-doc metric of the tasks fills which column."""

    f1: str
    em: str
    rouge: str
    bleu: str


METRIC_STYLES: dict[str, MetricNames] = {
    "squad": MetricNames("squad_f1", "squad_exact_match", "rouge_l_f", "bleu"),
    "500x": MetricNames("f1_500x", "exact_match_500x", "rouge_l_f_500x", "bleu_500x"),
}
# Every metric name that is a score (as opposed to an efficiency number), in either style.
SCORE_METRICS = frozenset(
    name for names in METRIC_STYLES.values() for name in vars(names).values()
)

# (metric, column title, how per-sample values combine): efficiency columns.
EFFICIENCY: tuple[tuple[str, str, str], ...] = (
    ("compression_ratio", "rate (compressed/original)", "mean"),
    ("requested_rate", "requested rate", "mean"),
    ("original_tokens", "original tokens", "mean"),
    ("compressed_tokens", "compressed tokens", "mean"),
    ("compress_seconds", "compress s/sample", "mean"),
    ("answer_seconds", "answer s/sample", "mean"),
    ("ttft_seconds", "TTFT s", "mean"),
    ("generated_tokens", "generated tokens", "mean"),
    ("peak_rss_mb", "peak RSS MB", "max"),
    ("flops_ratio", "FLOPs ratio", "mean"),
)


@dataclass(frozen=True)
class Normalised:
    """Scores relative to a baseline (x100) and their plain mean."""

    ratios: dict[str, float | None]
    mean: float | None
    used: tuple[str, ...]


def normalise(scores: Mapping[str, float], baseline: Mapping[str, float]) -> Normalised:
    """Per benchmark ``score / baseline x 100``, then the mean of those ratios.

    Only benchmarks present in both and with a non-zero baseline enter the mean (the paper's
    Table 5 is the mean of ratios over its five QA benchmarks, not a ratio of means).
    """
    ratios: dict[str, float | None] = {}
    for bench, value in scores.items():
        base = baseline.get(bench)
        ratios[bench] = None if base is None or base == 0 else value / base * 100.0
    used = tuple(bench for bench, ratio in ratios.items() if ratio is not None)
    values = [ratio for ratio in ratios.values() if ratio is not None]
    mean = sum(values) / len(values) if values else None
    return Normalised(ratios, mean, used)
