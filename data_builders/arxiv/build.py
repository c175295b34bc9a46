"""Build the Arxiv Corpus: read a source, clean, split, audit, tokenise, cut and write the
output folder as one unit."""

from __future__ import annotations

import contextlib
import logging
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from tqdm import tqdm

from bench._atomic import atomic_directory
from bench.prepare.manifest import MANIFEST_NAME
from data_builders._io import link_or_copy, sha256_file, write_parquet
from data_builders.arxiv import api, sources
from data_builders.arxiv.config import BuildConfig, BuildResult
from data_builders.arxiv.records import Paper
from data_builders.arxiv.splits import Collected, Selection, collect, select_eval
from data_builders.arxiv.tables import group_table, split_table
from data_builders.arxiv.tokens import TargetTokenizer

logger = logging.getLogger(__name__)


def _papers(config: BuildConfig, result: BuildResult) -> Iterator[Paper]:
    if config.source == "api":
        if config.api is None:
            raise ValueError("the api source needs ApiSettings")
        w = config.windows
        for start, end in ((w.train_after, w.train_before), (w.after, w.before)):
            query = api.build_query(start, end, config.categories)
            path, papers = api.fetch(config.api, query)
            result.inputs.append(
                {"url": config.api.url, "query": query, "sha256": sha256_file(path)}
            )
            yield from papers
        return
    if config.input is None:
        raise ValueError(f"--source {config.source} needs --input PATH")
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


def _select(config: BuildConfig, collected: Collected) -> Selection:
    selection = select_eval(
        collected.eval,
        collected.train,
        (config.dev_size, config.test_size),
        config.seed,
        config.ngram,
        config.overlap_threshold,
        config.keep_overlap,
    )
    if not selection.test:
        raise ValueError(
            f"no dev/test paper left after the contamination audit: {len(collected.eval)} "
            f"candidates, {len(selection.removed)} removed for sharing a {config.ngram}-gram "
            f"with train (--keep-overlap keeps them); nothing written, {config.out} left as it was"
        )
    return selection


def _build_into(config: BuildConfig, folder: Path) -> BuildResult:
    from data_builders.arxiv import card

    result = BuildResult()
    stream = tqdm(_papers(config, result), desc="reading", unit=" records", disable=None)
    collected: Collected = collect(stream, config.windows, config.categories, result.counts)
    if not collected.eval:
        raise ValueError(
            f"no papers submitted on/after {config.windows.after}"
            + (f" and before {config.windows.before}" if config.windows.before else "")
            + " in the input: nothing to put in dev/test"
        )
    tokenizer = TargetTokenizer.load(config.tokenizer)
    result.tokenizer = tokenizer
    selection = _select(config, collected)
    result.selection = selection
    _warn_short(selection, config)
    tables = {}
    n_tokens: dict[str, int] = {}
    for name, papers in (
        ("train", collected.train),
        ("dev", selection.dev),
        ("test", selection.test),
    ):
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
