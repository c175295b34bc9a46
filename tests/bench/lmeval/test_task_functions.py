"""Task-side functions: data loading errors, prompts, scoring with efficiency records."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import specs
from bench.harness import sample_log
from bench.lmeval import task_functions
from bench.prepare.data_dir import MissingBenchmarkError
from bench.results_record import SampleRecord


def test_missing_benchmark_names_the_command_that_prepares_it(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("COMPRESSBENCH_DATA", str(tmp_path))
    with pytest.raises(MissingBenchmarkError, match=r"python -m bench\.prepare squad --source"):
        task_functions.load_qa(benchmark="squad")
    with pytest.raises(MissingBenchmarkError, match=r"bench\.prepare regeneration"):
        task_functions.load_regeneration(length=96)


def test_missing_regeneration_length_lists_prepared_lengths(data_env: Path):
    with pytest.raises(ValueError, match=r"prepared lengths: \[96\]"):
        task_functions.load_regeneration(length=480)


def test_qa_prompt_is_the_papers_instruction_prompt():
    doc = {"instruction": task_functions.QA_INSTRUCTION, "context": "C.", "question": "Q?"}
    assert task_functions.doc_to_text_qa(doc) == (
        "Please finish the extractive question answering task. Just output the answer. "
        "Context: C. Question: Q? Answer:")


def test_process_qa_scores_every_gold_and_counts_empty_predictions():
    doc = {"qid": "q1", "context": "ctx", "answers": ["the Eiffel Tower", "Eiffel"]}
    assert task_functions.process_qa(doc, [" eiffel tower."])["squad_exact_match"] == 1.0
    empty = task_functions.process_qa(doc, [""])
    assert empty["squad_f1"] == 0.0 and empty["exact_match_500x"] == 0.0
    assert "compression_ratio" not in empty


def test_process_results_adds_the_models_sample_record():
    doc = {"qid": "q2", "context": "some context", "answers": ["x"]}
    record = SampleRecord(0.5, 10, 5, 0.1, 0.2, 0.05, 3, 100.0, 0.4)
    sample_log.file_record(doc, record)
    try:
        scores = task_functions.process_qa(doc, ["x"])
    finally:
        sample_log.clear()
    assert scores["compression_ratio"] == 0.5 and scores["flops_ratio"] == 0.4
    optional = {"requested_rate", "encoded_context_tokens"}  # None unless a method states them
    assert set(specs.metric_names("efficiency")) - optional <= set(scores)


def test_regeneration_scores_a_perfect_copy_as_one():
    doc = {"qid": "r1", "context": "A small text. It has two sentences."}
    scores = task_functions.process_regeneration(doc, [" A small text. It has two sentences."])
    assert scores["rouge_l_f"] == pytest.approx(1.0)
    assert scores["bleu"] == pytest.approx(1.0)
