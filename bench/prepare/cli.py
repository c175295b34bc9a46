"""Prepare benchmark data: ``python -m bench.prepare BENCHMARK --source SOURCE ...``.

QA benchmarks (those declared in :mod:`bench.specs`) come from an MRQA-format file or the
Hugging Face ``mrqa`` dataset; regeneration comes from an Arxiv Corpus folder
of ``test_len{L}.parquet`` files. Each is written to ``OUT/<benchmark>/`` as
``test.parquet`` + ``README.md`` (card) + ``manifest.json`` (args, versions, hashes).

QA recipe (builder version in :data:`BUILDER_VERSION`):

1. read contexts; MRQA markup (``[PAR]``, ``[TLE]``...) is turned into plain text unless
   ``--keep-markup`` (the paper's prompt shows plain context);
2. cut each context to ``--max-context-tokens`` tokens of the target tokenizer (no special
   tokens) at a token end, so the text stays a faithful prefix;
3. drop questions none of whose gold answers occurs in the cut context on SQuAD-normalised
   word boundaries ("no" is not in "known"; counted: cut off by the limit, or never in the
   context); empty gold answers are left out and counted, and a question without any
   other answer is dropped;
4. sample ``--limit`` questions: rank by SHA-256 of ``(seed, qid)``, keep the first N, write
   them in source order (stable across platforms; a larger limit is a superset).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from transformers import PreTrainedTokenizerBase

from bench import specs
from bench.prepare.cut import load_tokenizer
from bench.prepare.data_dir import data_root
from bench.prepare.hf_mrqa import HF_DATASET, hf_benchmarks, load_hf_mrqa
from bench.prepare.mrqa import read_mrqa
from bench.prepare.prepared_io import QA_SCHEMA, REGENERATION_SCHEMA, tokenizer_info, write_prepared
from bench.prepare.qa import build_qa_rows, sample_rows
from bench.prepare.regeneration import (
    PAPER_LENGTHS,
    build_regeneration_rows,
    read_corpus_lengths,
)
from bench.records import ContextSample
from bench.substrate.errors import InputError, add_debug_flag, run_cli
from bench.substrate.hashing import sha256_file
from bench.substrate.help import HelpFormatter
from bench.substrate.manifest import verify_if_built

__all__ = [
    "BUILDER_VERSION",
    "PAPER_LENGTHS",
    "main",
    "prepare_benchmark",
    "prepare_regeneration",
    "prepare_regeneration_from_texts",
]

BUILDER_VERSION = "1"
HF_SOURCES = ("hf", "hf:mrqa", f"hf:{HF_DATASET}")

TokenizerArg = str | PreTrainedTokenizerBase


def _load_contexts(
    benchmark: str, source: str | Path, subset: str | None, clean_markup: bool
) -> tuple[list[ContextSample], dict[str, Any]]:
    if str(source) in HF_SOURCES:
        if benchmark not in hf_benchmarks():
            raise InputError(
                f"{benchmark!r} has no Hugging Face source (its published data is gone); "
                "pass an MRQA-format .jsonl/.jsonl.gz file built for it"
            )
        if subset is not None:
            raise InputError("subset= filters a local file's 'benchmark' field; not for hf")
        contexts, provenance = load_hf_mrqa(benchmark, clean_markup=clean_markup)
        return contexts, {"kind": "huggingface", **provenance}
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"source {path} is not a file (nor one of {', '.join(HF_SOURCES)})")
    verify_if_built(path.parent, "the command that wrote {folder} (see its README.md)", ())
    contexts = _subset(list(read_mrqa(path, clean_markup=clean_markup)), subset, benchmark, path)
    info = {"kind": "file", "path": str(path), "name": path.name, "sha256": sha256_file(path)}
    return contexts, info


def _subset(contexts: list[ContextSample], subset: str | None, benchmark: str,
            path: Path) -> list[ContextSample]:
    """The contexts labelled ``subset``; without it every context, with a warning when the
    file's contexts carry several benchmark labels (they are then mixed)."""
    if subset is None:
        labels = sorted({str(c.metadata["benchmark"]) for c in contexts
                         if c.metadata.get("benchmark") is not None})
        if len(labels) > 1:
            example = benchmark if benchmark in labels else labels[0]
            print(f"warning: {path} holds contexts of several benchmarks ({', '.join(labels)}) "
                  f"and all of them are prepared as {benchmark}; give --subset {example} to "
                  "take one", file=sys.stderr)
        return contexts
    chosen = [c for c in contexts if c.metadata.get("benchmark") == subset]
    if not chosen:
        raise InputError(f"{path}: no context has field benchmark == {subset!r}")
    return chosen


def prepare_benchmark(
    benchmark: str,
    source: str | Path,
    out_root: Path | None,
    tokenizer: TokenizerArg,
    max_context_tokens: int = 480,
    limit: int | None = None,
    seed: int = 0,
    subset: str | None = None,
    clean_markup: bool = True,
    show_progress: bool = True,
) -> Path:
    """Prepare one QA benchmark into ``out_root/<benchmark>/``; returns the parquet path.

    ``source`` is an MRQA ``.jsonl``/``.jsonl.gz`` file or ``"hf"`` (the hub ``mrqa``
    dataset; SQuAD/HotpotQA from its validation split, RelationExtraction/RACE from test).
    ``subset`` keeps only contexts whose line has ``"benchmark": subset`` (bundled demo
    file); None keeps every context. ``out_root`` None means
    :func:`bench.prepare.data_dir.data_root`.
    """
    qa = tuple(spec.name for spec in specs.benchmarks("qa"))
    if benchmark not in qa:
        raise InputError(f"unknown QA benchmark {benchmark!r}; choose from {qa}")
    if max_context_tokens < 1:
        raise InputError(f"max_context_tokens must be >= 1, got {max_context_tokens}")
    tok = load_tokenizer(tokenizer)
    contexts, source_info = _load_contexts(benchmark, source, subset, clean_markup)
    rows, counts = build_qa_rows(contexts, tok, max_context_tokens, show_progress)
    selected = sample_rows(rows, limit, seed)
    counts.questions_selected = len(selected)
    counts.contexts_selected = len({row["context_id"] for row in selected})
    args = {
        "benchmark": benchmark,
        "max_context_tokens": max_context_tokens,
        "limit": limit,
        "seed": seed,
        "subset": subset,
        "clean_markup": clean_markup,
    }
    manifest = {
        "builder": "bench.prepare",
        "builder_version": BUILDER_VERSION,
        "args": args,
        "source": source_info,
        "tokenizer": tokenizer_info(tok),
        "counts": counts.as_dict(),
    }
    out_dir = (out_root if out_root is not None else data_root()) / benchmark
    card = _qa_card(manifest)
    return write_prepared(out_dir, selected, QA_SCHEMA, card, manifest)


def _regeneration_manifest(
    tok: PreTrainedTokenizerBase,
    source_info: dict[str, Any],
    lengths: Sequence[int],
    limit: int | None,
    seed: int,
    counts: dict[str, dict[str, int]],
) -> dict[str, Any]:
    return {
        "builder": "bench.prepare",
        "builder_version": BUILDER_VERSION,
        "args": {
            "benchmark": "regeneration",
            "lengths": list(lengths),
            "limit": limit,
            "seed": seed,
        },
        "source": source_info,
        "tokenizer": tokenizer_info(tok),
        "counts": counts,
    }


def _check_lengths(lengths: Sequence[int]) -> list[int]:
    if not lengths or any(length < 1 for length in lengths):
        raise InputError(f"lengths must be positive token counts, got {list(lengths)}")
    return sorted(set(lengths))


def prepare_regeneration(
    source: str | Path,
    out_root: Path | None,
    tokenizer: TokenizerArg,
    lengths: Sequence[int] = PAPER_LENGTHS,
    limit: int | None = None,
    seed: int = 0,
    show_progress: bool = True,
) -> Path:
    """Prepare ``regeneration`` from an Arxiv Corpus folder of ``test_len{L}.parquet`` files.

    Every text is cut to exactly ``L`` target tokens (texts shorter in the target tokenizer
    are dropped and counted); ``limit`` is per length group. Returns the parquet path.
    """
    lengths = _check_lengths(lengths)
    folder = Path(source)
    if not folder.is_dir():
        raise FileNotFoundError(f"regeneration source {folder} is not a folder")
    tok = load_tokenizer(tokenizer)
    records, files = read_corpus_lengths(folder, lengths)
    rows, counts = build_regeneration_rows(records, tok, limit, seed, show_progress)
    hashes = {name: sha256_file(Path(path)) for name, path in files.items()}
    source_info = {"kind": "arxiv_corpus", "path": str(folder), "sha256": hashes}
    manifest = _regeneration_manifest(tok, source_info, lengths, limit, seed, counts)
    out_dir = (out_root if out_root is not None else data_root()) / "regeneration"
    return write_prepared(
        out_dir, rows, REGENERATION_SCHEMA, _regeneration_card(manifest), manifest
    )


def prepare_regeneration_from_texts(
    records: Iterable[Mapping[str, Any]],
    out_root: Path | None,
    tokenizer: TokenizerArg,
    lengths: Sequence[int],
    limit: int | None = None,
    seed: int = 0,
    source_name: str = "texts",
    show_progress: bool = True,
) -> Path:
    """Prepare ``regeneration`` from ``{"id", "text"}`` records (e.g. the bundled demo).

    Each record is tried at every length; returns the parquet path.
    """
    lengths = _check_lengths(lengths)
    tok = load_tokenizer(tokenizer)
    items = [{"id": str(r["id"]), "text": str(r["text"])} for r in records]
    rows, counts = build_regeneration_rows(
        {length: items for length in lengths}, tok, limit, seed, show_progress
    )
    source_info = {"kind": "records", "name": source_name, "records": len(items)}
    manifest = _regeneration_manifest(tok, source_info, lengths, limit, seed, counts)
    out_dir = (out_root if out_root is not None else data_root()) / "regeneration"
    return write_prepared(
        out_dir, rows, REGENERATION_SCHEMA, _regeneration_card(manifest), manifest
    )


def _source_line(source: Mapping[str, Any]) -> str:
    if source["kind"] == "huggingface":
        return (
            f"Hugging Face `{source['dataset']}`, split `{source['split']}`, "
            f"subset `{source['subset']}`"
        )
    if source["kind"] == "file":
        return f"`{source['name']}` (sha256 `{source['sha256']}`)"
    if source["kind"] == "arxiv_corpus":
        return f"Arxiv Corpus folder `{source['path']}`"
    return f"{source['name']} ({source['records']} records)"


def _qa_card(manifest: Mapping[str, Any]) -> str:
    args, counts = manifest["args"], manifest["counts"]
    lines = [
        f"# {args['benchmark']} (prepared by compressbench)",
        "",
        f"- Source: {_source_line(manifest['source'])}"
        + (f", contexts labelled `{args['subset']}`" if args["subset"] else ""),
        f"- Tokenizer: `{manifest['tokenizer']['name_or_path']}`; contexts cut to at most "
        f"{args['max_context_tokens']} tokens (no special tokens), at a token end",
        f"- MRQA markup ({'cleaned to plain text' if args['clean_markup'] else 'kept'})",
        f"- Sampling: limit {args['limit']}, seed {args['seed']} (rank by SHA-256 of seed and qid)",
        f"- Builder: bench.prepare version {manifest['builder_version']}",
        "",
        "| step | count |",
        "|---|---|",
        f"| contexts read | {counts['contexts_read']} |",
        f"| questions read | {counts['questions_read']} |",
        f"| contexts cut by the token limit | {counts['contexts_truncated']} |",
        f"| questions dropped: answer cut off by the limit | {counts['dropped_answer_cut_off']} |",
        f"| questions dropped: no gold answer in the context (normalised words) | "
        f"{counts['dropped_answer_not_in_context']} |",
        f"| questions dropped: every gold answer empty | {counts['dropped_answer_empty']} |",
        f"| empty gold answers left out of kept questions | "
        f"{counts['empty_answers_removed']} |",
        f"| questions kept | {counts['questions_kept']} |",
        f"| questions selected (rows) | {counts['questions_selected']} |",
        f"| contexts selected | {counts['contexts_selected']} |",
        "",
        "Columns: qid, context_id, context, question, answers (all gold answers), source, "
        "context_tokens (target tokens of the cut context).",
        "",
    ]
    return "\n".join(lines)


def _regeneration_card(manifest: Mapping[str, Any]) -> str:
    args, counts = manifest["args"], manifest["counts"]
    lines = [
        "# regeneration (prepared by compressbench)",
        "",
        f"- Source: {_source_line(manifest['source'])}",
        f"- Tokenizer: `{manifest['tokenizer']['name_or_path']}`; each text cut to exactly "
        "`length` tokens (no special tokens), at a token end",
        f"- Sampling: limit {args['limit']} per length, seed {args['seed']} "
        "(rank by SHA-256 of seed and id)",
        f"- Builder: bench.prepare version {manifest['builder_version']}",
        "",
        "| length | read | dropped (too short) | kept | selected |",
        "|---|---|---|---|---|",
    ]
    for length, c in counts.items():
        lines.append(
            f"| {length} | {c['read']} | {c['dropped_too_short']} | {c['kept']} | {c['selected']} |"
        )
    lines += ["", "Columns: id, text, n_tokens (target tokens of text), length (group).", ""]
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.prepare",
        formatter_class=HelpFormatter,
        description="Prepare a benchmark into OUT/<benchmark>/test.parquet with a README card "
        "and manifest.json.",
    )
    parser.add_argument(
        "benchmark", choices=[spec.name for spec in specs.benchmarks()],
        help="benchmark to prepare"
    )
    parser.add_argument(
        "--source",
        required=True,
        help="QA: an MRQA-format .jsonl/.jsonl.gz file (the MRQA 2019 shared task's dev "
        "files, github.com/mrqa/MRQA-Shared-Task-2019), or 'hf' for the Hugging Face mrqa "
        f"dataset ({', '.join(hf_benchmarks())}; needs network on first use). "
        "regeneration: an Arxiv Corpus folder holding test_len{L}.parquet files",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="data root; the benchmark goes to OUT/<benchmark>/ (default: $COMPRESSBENCH_DATA "
        "or the user cache directory)",
    )
    parser.add_argument(
        "--tokenizer",
        default="meta-llama/Meta-Llama-3-8B-Instruct",
        help="target model tokenizer (hub name or local folder) used to count and cut tokens "
        "(default: meta-llama/Meta-Llama-3-8B-Instruct, the paper's target: gated on the hub; "
        "offline, give the target model's local folder)",
    )
    parser.add_argument(
        "--max-context-tokens",
        type=int,
        default=480,
        help="QA: cut each context to at most this many target tokens (default 480)",
    )
    parser.add_argument(
        "--limit",
        type=int,
        default=None,
        help="number of questions to sample (QA) or texts per length (regeneration); default: all",
    )
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    parser.add_argument(
        "--subset",
        default=None,
        help="QA from a file: keep only contexts whose 'benchmark' field equals this "
        "(default: every context of the file, whatever its label: an MRQA release file has "
        "none, the bundled demo file labels five benchmarks, so give --subset with it)",
    )
    parser.add_argument(
        "--keep-markup",
        action="store_true",
        help="QA: keep MRQA markup tokens ([PAR], [DOC], [TLE], [SEP]) instead of plain text",
    )
    parser.add_argument(
        "--lengths",
        default=",".join(map(str, PAPER_LENGTHS)),
        help="regeneration: comma-separated token lengths (default 96,192,288,384,480)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    add_debug_flag(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; prints the written parquet path.

    Bad input ends in one line on stderr and exit status 2, a failing disk (full, unreadable)
    in one line and 1, Ctrl-C in one line and 130 (``--debug``: with traceback).
    """
    return run_cli(_run, argv, failures=(OSError,))


def _run(argv: Sequence[str]) -> int:
    args = _parser().parse_args(argv)
    if specs.benchmark(args.benchmark).kind == "regeneration":
        try:
            lengths = [int(part) for part in args.lengths.split(",") if part.strip()]
        except ValueError:
            _parser().error(f"--lengths must be comma-separated integers, got {args.lengths!r}")
        path = prepare_regeneration(
            args.source,
            args.out,
            args.tokenizer,
            lengths,
            args.limit,
            args.seed,
            show_progress=not args.quiet,
        )
    else:
        path = prepare_benchmark(
            args.benchmark,
            args.source,
            args.out,
            args.tokenizer,
            args.max_context_tokens,
            args.limit,
            args.seed,
            subset=args.subset,
            clean_markup=not args.keep_markup,
            show_progress=not args.quiet,
        )
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
