"""The built-in declarations agree with the code that produces and reads their values."""

from __future__ import annotations

import dataclasses

from bench import metrics, specs
from bench.prepare.cli import _parser as prepare_parser
from bench.results_record import SampleRecord
from leaderboard._metrics import metric_style


def _names(*kinds: specs.MetricKind) -> set[str]:
    return {spec.name for spec in specs.metrics(*kinds)}


def test_score_metrics_are_those_the_scorers_produce():
    assert set(metrics.qa_scores("an answer", ["an answer"])) == _names("qa")
    assert set(metrics.regeneration_scores("a text.", "a text.")) == _names("regeneration")


def test_every_measured_metric_is_a_value_of_the_sample_record():
    record = SampleRecord(0.5, 10, 5, 0.1, 0.2, 0.05, 3, 100.0, 0.4)
    values = {field.name for field in dataclasses.fields(record)}
    for spec in specs.metrics("efficiency", "served", "size"):
        assert spec.name in values or hasattr(record, spec.name), spec.name


def test_each_metric_style_names_an_f1_em_rouge_and_bleu():
    for style in ("squad", "500x"):
        names = metric_style(style)
        assert {names.f1, names.em} <= _names("qa")
        assert {names.rouge, names.bleu} <= _names("regeneration")
        assert {spec.style for spec in specs.metrics("qa", "regeneration")
                if spec.name in vars(names).values()} == {style}


def test_prepare_offers_every_benchmark_once():
    choices = next(action.choices for action in prepare_parser()._actions
                   if action.dest == "benchmark")
    assert choices is not None
    assert sorted(choices) == sorted(spec.name for spec in specs.benchmarks())
