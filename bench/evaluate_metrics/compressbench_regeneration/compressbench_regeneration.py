"""compressbench regeneration metrics as a Hugging Face ``evaluate`` module.

Rouge-L-F and BLEU (rouge-score, sacrebleu) and the 500xCompressor-compatible variants,
computed by ``bench.metrics`` (the functions behind the compressbench leaderboard), so that
``evaluate.load(path)`` gives the leaderboard's numbers without the hub.
"""

from __future__ import annotations

from typing import Any

import datasets
import evaluate

from bench import metrics

_DESCRIPTION = """\
Regeneration scores of compressbench, each the mean over the pairs and in [0, 1]:
rouge_l_f (Google rouge-score rougeL F-measure, no stemming), bleu (sacrebleu sentence BLEU,
tokenizer 13a, exp smoothing, divided by 100), rouge_l_f_500x (the PyPI rouge package's
summary-level Rouge-L F, sentences split on ".") and bleu_500x (NLTK sentence BLEU, smoothing
method1, on word tokens). An empty prediction scores 0 and is counted.
"""

_INPUTS = """\
Args:
    predictions: list of regenerated texts (str).
    references: list of original texts (str), one per prediction.
    per_sample: also return each metric's per-pair scores under "<metric>_per_sample".
Returns:
    rouge_l_f, bleu, rouge_l_f_500x, bleu_500x: means over the pairs.
"""

_CITATION = """\
@inproceedings{lin-2004-rouge,
  title = {{ROUGE}: A Package for Automatic Evaluation of Summaries},
  author = {Lin, Chin-Yew},
  booktitle = {Text Summarization Branches Out},
  year = {2004}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _INPUTS)
class CompressbenchRegeneration(evaluate.Metric):  # type: ignore[misc]
    """Rouge-L-F, BLEU and their 500x-compatible variants of ``bench.metrics``."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_INPUTS,
            features=datasets.Features({
                "predictions": datasets.Value("string"),
                "references": datasets.Value("string"),
            }),
        )

    def _compute(self, predictions: list[str], references: list[str],
                 per_sample: bool = False) -> dict[str, Any]:
        scores = metrics.batch_regeneration_scores(predictions, references)
        if not predictions:
            raise ValueError("no prediction/reference pairs to score")
        result: dict[str, Any] = {name: sum(scores[name]) / len(predictions)
                                  for name in metrics.REGENERATION_METRICS}
        if per_sample:
            result.update({f"{name}_per_sample": scores[name]
                           for name in metrics.REGENERATION_METRICS})
        return result
