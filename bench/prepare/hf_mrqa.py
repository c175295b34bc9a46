"""The Hugging Face ``mrqa`` dataset (``mrqa-workshop/mrqa``) as :class:`ContextSample`s.

The hub dataset has one row per question with columns ``subset`` (e.g. ``"SQuAD"``),
``context``, ``qid``, ``question``, ``answers`` (list of str) and token/span columns that
are not used here. Its ``validation`` split is the MRQA in-domain dev data (SQuAD,
HotpotQA, ...), its ``test`` split the out-of-domain dev data (RelationExtraction, RACE, ...).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from bench import specs
from bench.prepare.mrqa import MRQAFormatError, clean_mrqa_markup, context_id_for
from bench.records import ContextSample, Question
from bench.substrate.errors import InputError

__all__ = ["HF_DATASET", "contexts_from_hf_rows", "hf_benchmarks", "load_hf_mrqa"]

HF_DATASET = "mrqa-workshop/mrqa"


def hf_benchmarks() -> tuple[str, ...]:
    """The declared benchmarks the hub dataset holds (their ``source``: the value of its
    ``subset`` column and the split)."""
    return tuple(spec.name for spec in specs.benchmarks("qa") if spec.source is not None)


def _field(where: str, index: int, row: Mapping[str, Any], key: str, kind: type) -> Any:
    if key not in row:
        raise MRQAFormatError(where, index, key, "missing")
    value = row[key]
    if not isinstance(value, kind):
        raise MRQAFormatError(
            where, index, key, f"expected {kind.__name__}, got {type(value).__name__}"
        )
    return value


def contexts_from_hf_rows(
    rows: Iterable[Mapping[str, Any]], where: str, clean_markup: bool = False
) -> Iterator[ContextSample]:
    """Group question rows by their context text (first-seen order) into contexts.

    ``where`` names the dataset and split in error messages; the "line" of an error is the
    1-based row index. Each context gets :func:`context_id_for` of its raw text.
    """
    grouped: dict[str, list[Question]] = {}
    subsets: dict[str, str] = {}
    first_row: dict[str, int] = {}
    for index, row in enumerate(rows, start=1):
        context = _field(where, index, row, "context", str)
        answers = _field(where, index, row, "answers", list)
        if not answers or not all(isinstance(a, str) for a in answers):
            raise MRQAFormatError(where, index, "answers", "expected a non-empty list of str")
        question = Question(
            qid=_field(where, index, row, "qid", str),
            question=_field(where, index, row, "question", str),
            answers=tuple(dict.fromkeys(answers)),
        )
        if context not in grouped:
            grouped[context] = []
            subsets[context] = _field(where, index, row, "subset", str)
            first_row[context] = index
        grouped[context].append(question)
    for context, questions in grouped.items():
        yield ContextSample(
            context_id=context_id_for(context),
            context=clean_mrqa_markup(context) if clean_markup else context,
            questions=tuple(questions),
            source=subsets[context],
            metadata={"line": first_row[context]},
        )


def load_hf_mrqa(
    benchmark: str, clean_markup: bool = False, revision: str | None = None
) -> tuple[list[ContextSample], dict[str, Any]]:
    """Download (or reuse the cache of) the hub dataset and return one benchmark's contexts.

    Returns the contexts and a provenance record (dataset, split, subset, fingerprint).
    Needs network access on first use; honours ``HF_DATASETS_OFFLINE`` afterwards.
    """
    source = specs.benchmark(benchmark).source if benchmark in hf_benchmarks() else None
    if source is None:
        raise InputError(
            f"benchmark {benchmark!r} is not in the Hugging Face mrqa dataset; "
            f"available: {', '.join(sorted(hf_benchmarks()))}"
        )
    from datasets import load_dataset

    subset, split = source.subset, source.split
    from bench.hub import load_from_hub

    dataset = load_from_hub(
        lambda: load_dataset(HF_DATASET, split=split, revision=revision),
        HF_DATASET, "data set", "--source (an MRQA .jsonl.gz file)", repo_type="dataset",
        revision=revision,
    )
    dataset = dataset.filter(lambda value: value == subset, input_columns="subset")
    if len(dataset) == 0:
        raise InputError(f"no rows with subset == {subset!r} in {HF_DATASET} split {split!r}")
    where = f"hf:{HF_DATASET}[{split}]"
    columns = ["subset", "context", "qid", "question", "answers"]
    rows = dataset.select_columns(columns)
    contexts = list(contexts_from_hf_rows(rows, where, clean_markup))
    provenance = {
        "dataset": HF_DATASET,
        "split": split,
        "subset": subset,
        "revision": revision,
        "fingerprint": getattr(dataset, "_fingerprint", None),
        "rows": len(dataset),
    }
    return contexts, provenance
