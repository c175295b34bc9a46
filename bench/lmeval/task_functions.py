"""The Python side of the lm-eval task definitions in ``tasks/``.

The YAML files reference these through ``tasks/utils.py``; keeping the logic here makes it
typed and testable. Documents keep context, question and gold answers apart so that the
``compressed`` model can compress the context alone and the scorer sees every gold answer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench import metrics
from bench.harness import sample_log
from bench.prepare.data_dir import benchmark_dir, verified_benchmark_dir
from bench.substrate.errors import InputError

QA_INSTRUCTION = (
    "Please finish the extractive question answering task. Just output the answer."
)
REGENERATION_INSTRUCTION = "Please repeat the following text exactly."


def _read_parquet(benchmark: str) -> Any:
    """The prepared table, read only after the folder matched its manifest."""
    import pyarrow.parquet as pq

    return pq.read_table(verified_benchmark_dir(benchmark) / "test.parquet")


def load_qa(benchmark: str = "", **_metadata: Any) -> Any:
    """``custom_dataset`` of the QA tasks: the prepared ``<data>/<benchmark>/test.parquet``."""
    import datasets

    table = _read_parquet(benchmark)
    dataset = datasets.Dataset(table).map(
        lambda _: {"kind": "qa", "instruction": QA_INSTRUCTION}
    )
    return datasets.DatasetDict({"test": dataset})


def load_regeneration(length: int = 96, **_metadata: Any) -> Any:
    """``custom_dataset`` of ``compressed_regeneration_<length>``: texts of that length group."""
    import datasets

    table = _read_parquet("regeneration")
    dataset = datasets.Dataset(table).filter(lambda row: row["length"] == int(length))
    if len(dataset) == 0:
        present = sorted(set(table.column("length").to_pylist()))
        folder = benchmark_dir("regeneration")
        lengths = ",".join(str(n) for n in sorted({*present, int(length)}))
        raise InputError(
            f"no regeneration texts of {length} tokens (prepared lengths: {present})", folder,
            hint=f"prepare them with: python -m bench.prepare regeneration --source "
                 f"CORPUS_DIR --lengths {lengths} --tokenizer TARGET_MODEL --out "
                 f"{folder.parent}; or run only compressed_regeneration_<L> of prepared lengths")
    dataset = dataset.map(
        lambda row: {
            "kind": "regeneration",
            "instruction": REGENERATION_INSTRUCTION,
            "qid": row["id"],
            "context": row["text"],
            "question": "",
        }
    )
    return datasets.DatasetDict({"test": dataset})


def doc_to_text_qa(doc: dict[str, Any]) -> str:
    """The paper's QA prompt (appendix A.3)."""
    return f"{doc['instruction']} Context: {doc['context']} Question: {doc['question']} Answer:"


def doc_to_target_qa(doc: dict[str, Any]) -> str:
    """First gold answer (shown in logs; scoring uses all of them)."""
    return str(doc["answers"][0])


def doc_to_text_regeneration(doc: dict[str, Any]) -> str:
    """Prompt asking the model to reproduce the context."""
    return f"{doc['instruction']} Text: {doc['context']} Repeated text:"


def doc_to_target_regeneration(doc: dict[str, Any]) -> str:
    return str(doc["context"])


def _efficiency(doc: dict[str, Any]) -> dict[str, float]:
    record = sample_log.take_record(doc)
    return record.metrics() if record is not None else {}


def process_qa(doc: dict[str, Any], results: list[str]) -> dict[str, float]:
    """SQuAD EM/F1 (official normalisation) and the 500x-compatible variants."""
    prediction = results[0].strip()
    answers = [str(answer) for answer in doc["answers"]]
    return {**metrics.qa_scores(prediction, answers), **_efficiency(doc)}


def process_regeneration(doc: dict[str, Any], results: list[str]) -> dict[str, float]:
    """Rouge-L-F and BLEU (rouge-score / sacrebleu) and the paper-compatible variants."""
    prediction = results[0].strip()
    return {**metrics.regeneration_scores(prediction, str(doc["context"])), **_efficiency(doc)}


def task_folder() -> Path:
    """The folder holding the task YAML files: the source checkout, else the installed copy."""
    checkout = Path(__file__).resolve().parents[2] / "tasks"
    if (checkout / "compressed_squad.yaml").is_file():
        return checkout
    from importlib.resources import files

    return Path(str(files("compressbench_tasks")))
