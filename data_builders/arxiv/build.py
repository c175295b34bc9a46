"""Build the Arxiv Corpus: read a source, clean, split, audit, tokenise, cut and write the
output folder as one unit.

The train split streams: the records are spilled in sorted runs inside the staging folder
(:mod:`data_builders.arxiv.runs`), merged per id twice (once to find repeated abstracts from
their digests, once to write ``train.parquet`` row group by row group), and the audit reads
the train texts back from that file. Memory holds the dev/test candidates, a digest and a
date per paper, and one row group.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from tqdm import tqdm

from bench.substrate.atomic import atomic_directory, atomic_path, link_or_copy
from bench.substrate.errors import InputError
from bench.substrate.hashing import sha256_file
from bench.substrate.manifest import MANIFEST_NAME
from bench.substrate.parquet import write_parquet
from data_builders.arxiv import api, sources
from data_builders.arxiv.config import BuildConfig, BuildResult
from data_builders.arxiv.records import Paper
from data_builders.arxiv.runs import PaperFile, SortedRuns
from data_builders.arxiv.splits import AbstractIndex, Selection, merge_ids, select_eval
from data_builders.arxiv.tables import SplitWriter, group_table, split_table
from data_builders.arxiv.tokens import TargetTokenizer

logger = logging.getLogger(__name__)


def _papers(config: BuildConfig, result: BuildResult) -> Iterator[Paper]:
    if config.source == "api":
        if config.api is None:
            raise ValueError("the api source needs ApiSettings")
        w = config.windows
        for start, end in ((w.train_after, w.train_before), (w.after, w.before)):
            query = api.build_query(start, end, config.categories)
            fetched = api.fetch(config.api, query)
            result.inputs.append(
                {"url": config.api.url, "query": query, "sha256": sha256_file(fetched.path)}
            )
            if fetched.empty:
                result.empty_answers.append(query)
            yield from fetched.papers
        return
    if config.input is None:
        raise InputError(f"--source {config.source} needs --input PATH")
    if not config.input.is_file():
        raise FileNotFoundError(f"--input {config.input}: no such file")
    result.inputs.append({"path": str(config.input), "sha256": sha256_file(config.input)})
    reader = sources.iter_snapshot if config.source == "snapshot" else sources.iter_jsonl
    yield from reader(config.input, config.skip_bad, result.counts)


def _cut_groups(
    tokenizer: TargetTokenizer,
    test: list[Paper],
    n_tokens: dict[str, int],
    config: BuildConfig,
    counts: Counter[str],
) -> dict[int, tuple[list[Paper], list[str]]]:
    groups: dict[int, tuple[list[Paper], list[str]]] = {}
    for length in config.lengths:
        papers: list[Paper] = []
        texts: list[str] = []
        for paper in test:
            if n_tokens[paper.id] < length:
                continue
            cut = tokenizer.cut(paper.text, length)
            if cut is None:
                counts[f"cut_mismatch_dropped_len{length}"] += 1
                continue
            papers.append(paper)
            texts.append(cut)
        groups[length] = (papers, texts)
    return groups


OUTPUT_ENTRIES = (
    "train.parquet",
    "dev.parquet",
    "test.parquet",
    "test_len*.parquet",
    "data",
    "README.md",
    MANIFEST_NAME,
)


def kept_entries(config: BuildConfig) -> tuple[str, ...]:
    """Entries of the output folder that outlive a rebuild: the API cache when inside it."""
    keep = [".cache"]
    if config.api is not None:
        cache = Path(os.path.abspath(config.api.cache_dir))
        with contextlib.suppress(ValueError, IndexError):
            keep.append(cache.relative_to(os.path.abspath(config.out)).parts[0])
    return tuple(dict.fromkeys(keep))


def build(config: BuildConfig) -> BuildResult:
    """Run the whole build; the output folder is replaced as a whole once every file is written.

    Killed at any moment, ``config.out`` holds the previous complete corpus or the new one;
    a build that fails leaves it as it was.
    """
    with atomic_directory(
        config.out, keep=kept_entries(config), owned=OUTPUT_ENTRIES
    ) as staging:
        return _build_into(config, staging)


def _select(config: BuildConfig, candidates: PaperFile,
            train_texts: Callable[[], Iterator[str]]) -> Selection:
    selection = select_eval(
        candidates.ids,
        candidates.take,
        train_texts,
        (config.dev_size, config.test_size),
        config.seed,
        config.ngram,
        config.overlap_threshold,
        config.keep_overlap,
    )
    if not selection.test:
        raise InputError(
            f"no dev/test paper left after the contamination audit: {len(candidates.ids)} "
            f"candidates, {len(selection.removed)} removed for sharing a {config.ngram}-gram "
            f"with train (--keep-overlap keeps them); nothing written, {config.out} left as it was"
        )
    return selection


def _spill(config: BuildConfig, result: BuildResult, runs: SortedRuns) -> None:
    """Read the source once: records of other categories are counted, the rest spilled."""
    wanted = set(config.categories)
    for paper in tqdm(_papers(config, result), desc="reading", unit=" records", disable=None):
        if wanted and wanted.isdisjoint(paper.categories):
            result.counts["outside_categories"] += 1
            continue
        runs.add(paper, config.windows.of(paper.published) is not None)


def _find_repeats(runs: SortedRuns, config: BuildConfig, counts: Counter[str]
                  ) -> tuple[np.ndarray, int]:
    """Which merged papers (by position in id order) repeat an earlier abstract, and how many
    dev/test candidates remain."""
    index = AbstractIndex()
    evals = bytearray()
    for paper, window in merge_ids(runs.groups(), config.windows, counts):
        index.add(paper)
        evals.append(window == "eval")
    repeated = index.repeated()
    if repeated.any():
        counts["duplicate_abstracts_removed"] += int(repeated.sum())
    candidates = np.frombuffer(evals, dtype=np.uint8).astype(bool) & ~repeated
    return repeated, int(candidates.sum())


def _write_train(runs: SortedRuns, repeated: np.ndarray, config: BuildConfig,
                 tokenizer: TargetTokenizer, path: Path, candidates: PaperFile) -> int:
    """Write ``train.parquet`` as the merged papers stream by, and the dev/test candidates
    to ``candidates`` (both in id order); the train rows."""
    batch: list[Paper] = []
    with atomic_path(path) as temporary:
        writer = SplitWriter(temporary)
        merged = merge_ids(runs.groups(), config.windows, Counter())
        for position, (paper, window) in enumerate(merged):
            if repeated[position]:
                continue
            if window == "eval":
                candidates.add(paper)
                continue
            batch.append(paper)
            if len(batch) == _TOKENIZER_BATCH:
                _add_counted(writer, batch, tokenizer)
        _add_counted(writer, batch, tokenizer)
        writer.close()
    candidates.close()
    return writer.rows


_TOKENIZER_BATCH = 1024


def _add_counted(writer: SplitWriter, batch: list[Paper], tokenizer: TargetTokenizer) -> None:
    for paper, n_tokens in zip(batch, tokenizer.count([p.text for p in batch]), strict=True):
        writer.add(paper, n_tokens)
    batch.clear()


def _texts_of(path: Path) -> Callable[[], Iterator[str]]:
    """A function streaming the ``text`` column of a split file."""

    def texts() -> Iterator[str]:
        # Pre-buffering keeps every row group read in memory until the reader is closed.
        with pq.ParquetFile(path, pre_buffer=False) as split:
            for batch in split.iter_batches(batch_size=4096, columns=["text"],
                                            use_threads=False):
                yield from batch.column(0).to_pylist()

    return texts


def _no_candidates(config: BuildConfig, result: BuildResult) -> str:
    w = config.windows
    message = (
        f"no papers submitted on/after {w.after}"
        + (f" and before {w.before}" if w.before else "")
        + " in the input: nothing to put in dev/test"
    )
    query = api.build_query(w.after, w.before, config.categories)
    if query in result.empty_answers:
        message += "; " + api.empty_answer_note(query)
    return message


def _build_into(config: BuildConfig, folder: Path) -> BuildResult:
    from data_builders.arxiv import card

    result = BuildResult()
    with tempfile.TemporaryDirectory(prefix=".spill-", dir=folder) as spill:
        runs = SortedRuns(Path(spill))
        _spill(config, result, runs)
        repeated, n_candidates = _find_repeats(runs, config, result.counts)
        if not n_candidates:
            raise InputError(_no_candidates(config, result))
        for query in result.empty_answers:
            logger.warning("%s", api.empty_answer_note(query))
        tokenizer = TargetTokenizer.load(config.tokenizer)
        result.tokenizer = tokenizer
        train = folder / "train.parquet"
        candidates = PaperFile(Path(spill) / "candidates.arrow")
        result.rows["train.parquet"] = _write_train(runs, repeated, config, tokenizer, train,
                                                    candidates)
        result.hashes["train.parquet"] = sha256_file(train)
        selection = _select(config, candidates, _texts_of(train))
    result.selection = selection
    _warn_short(selection, config)
    tables = {}
    n_tokens: dict[str, int] = {}
    for name, papers in (("dev", selection.dev), ("test", selection.test)):
        counts = tokenizer.count([p.text for p in papers])
        n_tokens.update(zip((p.id for p in papers), counts, strict=True))
        tables[f"{name}.parquet"] = split_table(papers, counts)
    for length, (papers, texts) in _cut_groups(
        tokenizer, selection.test, n_tokens, config, result.counts
    ).items():
        tables[f"test_len{length}.parquet"] = group_table(papers, texts, length)
    for name, table in tables.items():
        write_parquet(table, folder / name)
        result.rows[name] = table.num_rows
        result.hashes[name] = sha256_file(folder / name)
    _link_hub_layout(folder, result.rows)
    card.write_card_and_manifest(config, result, folder)
    return result


def _link_hub_layout(out: Path, rows: dict[str, int]) -> None:
    """``data/{split}-00000-of-00001.parquet`` links, the layout ``datasets`` resolves first.

    With them ``load_dataset("parquet", data_dir=out)`` gives exactly train/validation/test
    instead of sweeping the ``test_len*`` groups (another schema) into the test split. A
    split without rows gets no link: ``datasets`` cannot load an empty Parquet split, so it
    is left out (the card says why it is empty).
    """
    for split, name in (("train", "train"), ("validation", "dev"), ("test", "test")):
        if rows[f"{name}.parquet"]:
            link_or_copy(out / f"{name}.parquet", out / "data" / f"{split}-00000-of-00001.parquet")


def _warn_short(selection: Selection, config: BuildConfig) -> None:
    if len(selection.test) < config.test_size or len(selection.dev) < config.dev_size:
        logger.warning(
            "only %d test and %d dev papers available (asked %d and %d)",
            len(selection.test),
            len(selection.dev),
            config.test_size,
            config.dev_size,
        )
