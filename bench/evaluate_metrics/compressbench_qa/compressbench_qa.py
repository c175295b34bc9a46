"""compressbench QA metrics as a Hugging Face ``evaluate`` module.

Official SQuAD v1.1 exact match and F1 and the 500xCompressor-compatible variants, computed by
``bench.metrics`` (the functions behind the compressbench leaderboard), so that
``evaluate.load(path)`` gives the leaderboard's numbers without the hub.
"""

from __future__ import annotations

from typing import Any

import datasets
import evaluate

from bench import metrics

_DESCRIPTION = """\
Extractive QA scores of compressbench, each the mean over the pairs and in [0, 1]:
squad_exact_match and squad_f1 (official SQuAD v1.1 normalisation, best over the gold
answers) and exact_match_500x and f1_500x (the 500xCompressor scripts' definitions:
case-sensitive NLTK word tokens, scored against the gold answer with the highest Rouge-L).
An empty prediction scores 0 and is counted.
"""

_INPUTS = """\
Args:
    predictions: list of predicted answers (str).
    references: list of lists of gold answers (each a non-empty list of str).
    per_sample: also return each metric's per-pair scores under "<metric>_per_sample".
Returns:
    squad_exact_match, squad_f1, exact_match_500x, f1_500x: means over the pairs.
"""

_CITATION = """\
@inproceedings{rajpurkar-etal-2016-squad,
  title = {{SQ}u{AD}: 100,000+ Questions for Machine Comprehension of Text},
  author = {Rajpurkar, Pranav and Zhang, Jian and Lopyrev, Konstantin and Liang, Percy},
  booktitle = {Proceedings of EMNLP},
  year = {2016}
}
"""

METRICS = (*metrics.QA_METRICS, *metrics.QA_500X_METRICS)


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _INPUTS)
class CompressbenchQA(evaluate.Metric):  # type: ignore[misc]
    """SQuAD EM/F1 and the 500x-compatible EM/F1 of ``bench.metrics``."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_INPUTS,
            features=datasets.Features({
                "predictions": datasets.Value("string"),
                "references": datasets.Sequence(datasets.Value("string")),
            }),
        )

    def _compute(self, predictions: list[str], references: list[list[str]],
                 per_sample: bool = False) -> dict[str, Any]:
        squad = metrics.batch_squad_scores(predictions, references)
        paper = metrics.batch_qa_500x_scores(predictions, references)
        scores = {**squad, **paper}
        result: dict[str, Any] = {name: _mean(scores[name]) for name in METRICS}
        if per_sample:
            result.update({f"{name}_per_sample": scores[name] for name in METRICS})
        return result


def _mean(values: list[float]) -> float:
    if not values:
        raise ValueError("no prediction/reference pairs to score")
    return sum(values) / len(values)
