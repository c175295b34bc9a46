"""Papers spilled to disk in runs sorted by id and merged back in id order: an external sort,
so that memory holds one run while reading and a few rows per run while merging.

A record outside both date windows is kept as its id and date only (all the merge needs).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc

from data_builders.arxiv.records import Paper

RUN_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("title", pa.string()),
        ("text", pa.string()),
        ("published", pa.date32()),
        ("categories", pa.list_(pa.string())),
        ("version", pa.int64()),
        ("in_window", pa.bool_()),
    ]
)
_OPTIONS = ipc.IpcWriteOptions(compression="lz4")
# Records per run (about 50 MB of papers held while reading) and rows read at a time from
# each run while merging.
RUN_SIZE = 25_000
BATCH_ROWS = 128


@dataclass(frozen=True)
class Spilled:
    """One input record: the paper (text empty when outside the windows) and whether it lies
    inside a date window."""

    paper: Paper
    in_window: bool


class SortedRuns:
    """Collects papers in input order; :meth:`groups` gives them back grouped by id.

    Every ``run_size`` records (default :data:`RUN_SIZE`) the pending ones are sorted by id
    (stably, so records of one id keep their input order) and written to ``folder``;
    :meth:`groups` merges the runs, reading ``batch_rows`` rows of each at a time.
    """

    def __init__(self, folder: Path, run_size: int | None = None,
                 batch_rows: int | None = None) -> None:
        self.folder = folder
        self.run_size = run_size or RUN_SIZE
        self.batch_rows = batch_rows or BATCH_ROWS
        self._pending: list[Spilled] = []
        self._runs: list[Path] = []

    def add(self, paper: Paper, in_window: bool) -> None:
        """Spill one record (its text only when it lies in a window)."""
        self._pending.append(Spilled(paper, in_window))
        if len(self._pending) >= self.run_size:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        self._pending.sort(key=lambda item: item.paper.id)
        path = self.folder / f"run-{len(self._runs):06d}.arrow"
        with pa.OSFile(str(path), "wb") as sink, ipc.new_file(sink, RUN_SCHEMA,
                                                               options=_OPTIONS) as writer:
            for start in range(0, len(self._pending), self.batch_rows):
                writer.write_batch(_batch(self._pending[start : start + self.batch_rows]))
        self._runs.append(path)
        self._pending = []

    def groups(self) -> Iterator[list[Spilled]]:
        """The records of each id in id order, each group in input order."""
        self._flush()
        merged = heapq.merge(*(_read(path) for path in self._runs),
                             key=lambda item: item.paper.id)
        for _, group in itertools.groupby(merged, key=lambda item: item.paper.id):
            yield list(group)


def _batch(items: list[Spilled]) -> pa.RecordBatch:
    inside = [item.in_window for item in items]
    papers = [item.paper for item in items]
    return pa.record_batch(
        [
            [p.id for p in papers],
            [p.title if keep else "" for p, keep in zip(papers, inside, strict=True)],
            [p.text if keep else "" for p, keep in zip(papers, inside, strict=True)],
            [p.published for p in papers],
            [list(p.categories) if keep else [] for p, keep in zip(papers, inside, strict=True)],
            [p.version for p in papers],
            inside,
        ],
        schema=RUN_SCHEMA,
    )


def _read(path: Path) -> Iterator[Spilled]:
    with pa.OSFile(str(path), "rb") as source:
        reader = ipc.open_file(source)
        for index in range(reader.num_record_batches):
            columns = reader.get_batch(index).to_pydict()
            for paper_id, title, text, published, categories, version, inside in zip(
                columns["id"], columns["title"], columns["text"], columns["published"],
                columns["categories"], columns["version"], columns["in_window"], strict=True,
            ):
                yield Spilled(Paper(paper_id, title, text, published, tuple(categories),
                                    version), inside)


class PaperFile:
    """Papers written to one file in order, read back by position (a few scans at most)."""

    def __init__(self, path: Path, batch_rows: int = 1024) -> None:
        self.path = path
        self.batch_rows = batch_rows
        self.ids: list[str] = []
        self._pending: list[Spilled] = []
        self._sink = pa.OSFile(str(path), "wb")
        self._writer = ipc.new_file(self._sink, RUN_SCHEMA, options=_OPTIONS)

    def add(self, paper: Paper) -> None:
        """The next paper."""
        self.ids.append(paper.id)
        self._pending.append(Spilled(paper, True))
        if len(self._pending) == self.batch_rows:
            self._writer.write_batch(_batch(self._pending))
            self._pending = []

    def close(self) -> None:
        """Write what is pending and the footer."""
        if self._pending:
            self._writer.write_batch(_batch(self._pending))
            self._pending = []
        self._writer.close()
        self._sink.close()

    def take(self, positions: list[int]) -> list[Paper]:
        """The papers at ``positions``, in that order."""
        wanted = set(positions)
        found = {index: item.paper for index, item in enumerate(_read(self.path))
                 if index in wanted}
        return [found[position] for position in positions]
