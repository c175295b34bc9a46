"""The benchmarks and metrics of compressbench: every stage reads them from here.

Benchmarks are in the leaderboard's column order; metrics in the order of the task files'
``metric_list`` (scores first) and of the efficiency table.
"""

from __future__ import annotations

from bench.specs.types import BenchmarkSpec, MetricSpec, MrqaSource

# lm-eval group of every QA task; the group's score is the mean over its tasks of the
# default --metric-style's scores.
QA_GROUP = "compressed_qa"
DEFAULT_STYLE = "squad"

BENCHMARKS: tuple[BenchmarkSpec, ...] = (
    BenchmarkSpec("arxivqa", "compressed_arxivqa", "ArxivQA", "qa"),
    BenchmarkSpec("squad", "compressed_squad", "SQuAD", "qa",
                  MrqaSource("SQuAD", "validation")),
    BenchmarkSpec("relation_extraction", "compressed_relation_extraction", "RE", "qa",
                  MrqaSource("RelationExtraction", "test")),
    BenchmarkSpec("hotpotqa", "compressed_hotpotqa", "HotpotQA", "qa",
                  MrqaSource("HotpotQA", "validation")),
    BenchmarkSpec("race", "compressed_race", "RACE", "qa", MrqaSource("RACE", "test")),
    BenchmarkSpec("regeneration", "compressed_regeneration", "Regeneration", "regeneration",
                  lengths=(96, 192, 288, 384, 480), stop=()),
)

METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("squad_f1", "F1", "qa", True, style="squad"),
    MetricSpec("squad_exact_match", "EM", "qa", True, style="squad"),
    MetricSpec("f1_500x", "F1", "qa", True, style="500x"),
    MetricSpec("exact_match_500x", "EM", "qa", True, style="500x"),
    MetricSpec("rouge_l_f", "Rouge-L-F", "regeneration", True, style="squad"),
    MetricSpec("bleu", "BLEU", "regeneration", True, style="squad"),
    MetricSpec("rouge_l_f_500x", "Rouge-L-F", "regeneration", True, style="500x"),
    MetricSpec("bleu_500x", "BLEU", "regeneration", True, style="500x"),
    MetricSpec("compression_ratio", "rate (compressed/original)", "efficiency", False),
    MetricSpec("requested_rate", "requested rate", "efficiency", False),
    MetricSpec("original_tokens", "original tokens", "efficiency", False),
    MetricSpec("compressed_tokens", "compressed tokens", "efficiency", False),
    MetricSpec("compress_seconds", "compress s/sample", "efficiency", False),
    MetricSpec("answer_seconds", "answer s/sample", "efficiency", False),
    MetricSpec("ttft_seconds", "TTFT s", "efficiency", False),
    MetricSpec("generated_tokens", "generated tokens", "efficiency", False),
    MetricSpec("peak_rss_mb", "peak RSS MB", "efficiency", False, pooling="max"),
    MetricSpec("flops_ratio", "FLOPs ratio", "efficiency", False),
    MetricSpec("encoded_context_tokens", "encoded context tokens", "efficiency", True),
    MetricSpec("compressed_bits", "compressed bits", "size", False),
    MetricSpec("bits_per_token", "bits / original token", "size", False),
    MetricSpec("original_bytes", "original bytes", "size", False),
    MetricSpec("bits_per_byte", "bits / original byte", "size", False),
    MetricSpec("served_prompt_tokens", "served prompt tokens", "served", False),
    MetricSpec("served_completion_tokens", "served completion tokens", "served", False),
)
