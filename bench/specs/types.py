"""The typed declarations of a benchmark and of a per-sample metric."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

BenchmarkKind = Literal["qa", "regeneration"]
# qa, regeneration: scores of that kind of task, computed by ``bench.metrics``; efficiency:
# measured for every answer (``bench.results_record.SampleRecord``); size: the
# compressed form's bits (when known) and the UTF-8 bytes of the context they stand for;
# served: usage a server reported (served models only).
MetricKind = Literal["qa", "regeneration", "efficiency", "size", "served"]
Pooling = Literal["mean", "max"]
SCORE_KINDS: tuple[MetricKind, ...] = ("qa", "regeneration")


@dataclass(frozen=True)
class MrqaSource:
    """A benchmark's subset and split of the Hugging Face ``mrqa`` dataset."""

    subset: str
    split: str


@dataclass(frozen=True)
class BenchmarkSpec:
    """One benchmark, under each of the names the pipeline knows it by.

    ``name`` is ``bench.prepare``'s argument and the prepared data's folder; ``task`` the
    lm-eval task (a regeneration benchmark has one task ``<task>_<length>`` per length in
    ``lengths``, grouped as ``task``); ``title`` names it in the leaderboard's columns;
    ``source`` is where ``--source hf`` reads it (None: from a file only). A QA answer may
    take ``answer_tokens`` tokens; a regenerated text a quarter more than its length.
    ``stop`` ends a generation; ``version`` is the lm-eval task version.
    """

    name: str
    task: str
    title: str
    kind: BenchmarkKind
    source: MrqaSource | None = None
    answer_tokens: int = 46
    lengths: tuple[int, ...] = ()
    stop: tuple[str, ...] = ("\n",)
    version: str = "1.0"

    def __post_init__(self) -> None:
        if self.kind not in get_args(BenchmarkKind):
            raise ValueError(f"benchmark {self.name!r}: kind {self.kind!r} is not one of "
                             f"{', '.join(get_args(BenchmarkKind))}")
        if (self.kind == "regeneration") != bool(self.lengths):
            raise ValueError(f"benchmark {self.name!r}: a regeneration benchmark, and only "
                             "one, has lengths")

    def task_lengths(self) -> dict[str, int | None]:
        """Its lm-eval tasks and the text length each regenerates (None for QA)."""
        if self.kind == "qa":
            return {self.task: None}
        return {f"{self.task}_{length}": length for length in self.lengths}

    def max_gen_toks(self, length: int | None) -> int:
        """Tokens a task may generate: the answer budget, or a text's length plus a quarter."""
        return self.answer_tokens if length is None else length + length // 4


@dataclass(frozen=True)
class MetricSpec:
    """One per-sample metric of the tasks.

    ``name`` is its key in the per-document results and samples; ``title`` its column title
    (scores: the title a benchmark's column pairs with its name, as in ``SQuAD F1``).
    ``aggregation`` is lm-eval's over a task's documents; ``pooling`` how the leaderboard
    combines a row's per-sample values over all its tasks. A score belongs to one
    ``--metric-style`` (``style``).
    """

    name: str
    title: str
    kind: MetricKind
    higher_is_better: bool
    aggregation: str = "mean"
    pooling: Pooling = "mean"
    style: str = ""

    def __post_init__(self) -> None:
        if self.kind not in get_args(MetricKind):
            raise ValueError(f"metric {self.name!r}: kind {self.kind!r} is not one of "
                             f"{', '.join(get_args(MetricKind))}")
        if (self.kind in SCORE_KINDS) != bool(self.style):
            raise ValueError(f"metric {self.name!r}: a score, and only a score, has a style "
                             "(--metric-style)")
