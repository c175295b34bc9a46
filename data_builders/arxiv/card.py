"""The dataset card (README.md, loadable by ``datasets``) and manifest.json of a corpus build."""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from statistics import mean
from typing import TYPE_CHECKING, Any

from bench.substrate.atomic import atomic_write_text
from bench.substrate.hashing import sha256_file
from bench.substrate.manifest import write_manifest
from data_builders import BUILDER_VERSION
from data_builders._cards import markdown_table, package_versions

if TYPE_CHECKING:
    from data_builders.arxiv.config import BuildConfig, BuildResult


def _arguments(config: BuildConfig) -> dict[str, Any]:
    w = config.windows
    return {
        "source": config.source,
        "input": str(config.input) if config.input else None,
        "api_url": config.api.url if config.api else None,
        "after": w.after.isoformat(),
        "before": w.before.isoformat() if w.before else None,
        "train_before": w.train_before.isoformat(),
        "train_after": w.train_after.isoformat() if w.train_after else None,
        "categories": list(config.categories),
        "tokenizer": config.tokenizer,
        "lengths": list(config.lengths),
        "dev_size": config.dev_size,
        "test_size": config.test_size,
        "seed": config.seed,
        "ngram": config.ngram,
        "overlap_threshold": config.overlap_threshold,
        "keep_overlap": config.keep_overlap,
        "skip_bad": config.skip_bad,
    }


def overlap_summary(result: BuildResult, config: BuildConfig) -> dict[str, Any]:
    """Audit figures: texts audited, with any overlap, removed, and overlap fractions."""
    assert result.selection is not None
    kept = list(result.selection.overlap.values())
    removed = result.selection.removed
    fractions = [o.fraction for o in kept]
    return {
        "ngram": config.ngram,
        "threshold": config.overlap_threshold,
        "keep_overlap": config.keep_overlap,
        "audited": len(kept) + len(removed),
        "with_overlap": sum(1 for o in kept if o.shared) + len(removed),
        "removed": len(removed),
        "removed_ids": sorted(removed),
        "kept_with_overlap": sum(1 for o in kept if o.shared),
        "kept_mean_fraction": round(mean(fractions), 6) if fractions else 0.0,
        "kept_max_fraction": round(max(fractions), 6) if fractions else 0.0,
    }


def _front_matter(config: BuildConfig, rows: dict[str, int]) -> str:
    lines = [
        "---",
        "license: cc0-1.0",
        "language:",
        "- en",
        "configs:",
        "- config_name: default",
        "  data_files:",
    ]
    for split, name in (("train", "train"), ("validation", "dev"), ("test", "test")):
        if rows.get(f"{name}.parquet"):  # datasets cannot load a split without rows
            lines += [f"  - split: {split}", f"    path: {name}.parquet"]
    groups = [length for length in config.lengths if rows.get(f"test_len{length}.parquet")]
    if groups:  # datasets cannot read a Parquet file without rows: list non-empty groups only
        lines += ["- config_name: regeneration", "  data_files:"]
        for length in groups:
            lines += [f"  - split: len{length}", f"    path: test_len{length}.parquet"]
    return "\n".join([*lines, "---", ""])


def rebuild_command(config: BuildConfig) -> str:
    """The ``python -m bench.build_arxiv`` command of this build (output folder: ``{folder}``)."""
    w = config.windows
    parts = ["python", "-m", "bench.build_arxiv", "--source", config.source]
    parts += ["--input", os.path.abspath(config.input)] if config.input else []
    parts += ["--api-url", config.api.url] if config.api else []
    parts += ["--after", w.after.isoformat()]
    parts += ["--before", w.before.isoformat()] if w.before else []
    parts += ["--train-before", w.train_before.isoformat()]
    parts += ["--train-after", w.train_after.isoformat()] if w.train_after else []
    parts += ["--categories", ",".join(config.categories)] if config.categories else []
    parts += ["--tokenizer", config.tokenizer, "--lengths", ",".join(map(str, config.lengths))]
    parts += ["--dev-size", str(config.dev_size), "--test-size", str(config.test_size)]
    parts += ["--seed", str(config.seed), "--ngram", str(config.ngram)]
    parts += ["--overlap-threshold", str(config.overlap_threshold)]
    parts += ["--keep-overlap"] if config.keep_overlap else []
    parts += ["--skip-bad"] if config.skip_bad else []
    return shlex.join(parts) + " --out {folder}"


def empty_reasons(config: BuildConfig, result: BuildResult) -> dict[str, str]:
    """Why each output file without rows is empty."""
    assert result.selection is not None
    w, selection = config.windows, result.selection
    passed = len(selection.test) + len(selection.dev)
    audited = passed + len(selection.removed)
    train_window = f"before {w.train_before}" + (f", on/after {w.train_after}" if w.train_after
                                                  else "")
    reasons = {
        "train.parquet": f"no paper of the input was submitted {train_window}",
        "dev.parquet": "--dev-size 0" if config.dev_size == 0 else (
            f"only {passed} dev/test candidates passed the contamination audit ({audited} "
            f"audited, {len(selection.removed)} removed) and test takes the first "
            f"{config.test_size}"),
    }
    for length in config.lengths:
        dropped = result.counts.get(f"cut_mismatch_dropped_len{length}", 0)
        reasons[f"test_len{length}.parquet"] = (
            f"no test text has {length} or more tokens"
            + (f" ({dropped} dropped: no cut of exactly {length} tokens)" if dropped else ""))
    return {name: reasons[name] for name, rows in sorted(result.rows.items()) if rows == 0}


def _empty_section(config: BuildConfig, result: BuildResult) -> str:
    reasons = empty_reasons(config, result)
    if not reasons:
        return ""
    table = markdown_table(["file", "why it has no rows"], [[k, v] for k, v in reasons.items()])
    return f"""
## Empty files

{table}

They are written (same columns, no rows) but left out of `data/` and of the configs above:
`datasets` cannot load a Parquet split without rows, so `load_dataset` returns the other
splits.
"""


def render_card(config: BuildConfig, result: BuildResult) -> str:
    """Markdown card: sources, query, dates, counts, tokenizer, cleaning and overlap audit."""
    w = config.windows
    audit = overlap_summary(result, config)
    source = "\n".join(
        f"- `{item.get('query') or item.get('path')}` (sha256 `{item['sha256'][:16]}…`)"
        for item in result.inputs
    )
    rows = [[name, result.rows[name]] for name in sorted(result.rows)]
    counts = [[key, value] for key, value in sorted(result.counts.items())]
    eval_end = f"before {w.before}" if w.before else "up to the newest paper in the input"
    train_start = f"on/after {w.train_after} and " if w.train_after else ""
    return f"""{_front_matter(config, result.rows)}
# Arxiv Corpus (compressbench rebuild)

arXiv abstracts split by submission date so that dev/test texts postdate a model's knowledge
cutoff. Built by `python -m bench.build_arxiv` (builder version {BUILDER_VERSION}).

**Dates.** Every split is decided by the submission date of the FIRST version (v1) of a paper,
whatever the source: the snapshot's `versions[v1].created`, the API's and JSONL's `published`;
later versions and `update_date` never move a paper.

- train: submitted {train_start}before {w.train_before}
- dev / test: submitted on/after {w.after}, {eval_end}; disjoint, chosen in a seeded order
  (seed {config.seed}): the first {config.test_size} audited papers form test, the next
  {config.dev_size} dev.
- categories: {", ".join(config.categories) or "all"}

**Source** (`--source {config.source}`):
{source}

## Files and rows

{markdown_table(["file", "rows"], rows)}

`test_len{{L}}.parquet`: test abstracts with at least L tokens, cut to exactly L tokens of the
tokenizer `{config.tokenizer}` (`n_tokens` = `length` = L; each cut re-tokenises to L tokens,
cuts that cannot are dropped and counted). `n_tokens` of the splits counts the full text
without special tokens.
{_empty_section(config, result)}
## Cleaning

Whitespace and line breaks collapsed to single spaces; one record per arXiv id (earliest
date, text of the latest version); exact duplicate abstracts removed, the earliest kept.

{markdown_table(["count", "value"], counts)}

## Contamination audit

Lower-cased word {config.ngram}-grams of every dev/test candidate against all train texts.
A candidate with a share of shared n-grams above {config.overlap_threshold} is
{"kept (--keep-overlap)" if config.keep_overlap else "removed and replaced by the next one"}.

{markdown_table(["figure", "value"], [[k, v] for k, v in audit.items() if k != "removed_ids"])}

## Loading

```python
import datasets
corpus = datasets.load_dataset("parquet", data_dir="OUT")  # or load_dataset("OUT")
```

`manifest.json` lists every file with its SHA-256; the readers of this project refuse the
folder when a file differs. Rebuild: `{rebuild_command(config).replace("{folder}", "OUT")}`
"""


def write_card_and_manifest(config: BuildConfig, result: BuildResult, folder: Path) -> None:
    """Write README.md, then manifest.json with the hashes of every output (card included)."""
    card_path = folder / "README.md"
    atomic_write_text(card_path, render_card(config, result))
    outputs = {
        name: {"rows": result.rows[name], "sha256": result.hashes[name]} for name in result.rows
    }
    outputs["README.md"] = {"sha256": sha256_file(card_path)}
    manifest = {
        "builder": "data_builders.arxiv",
        "builder_version": BUILDER_VERSION,
        "arguments": _arguments(config),
        "versions": package_versions("arxiv", "pyarrow", "transformers", "tokenizers"),
        "tokenizer": result.tokenizer.identity() if result.tokenizer else None,
        "inputs": result.inputs,
        "outputs": outputs,
        "empty": empty_reasons(config, result),
        "counts": dict(sorted(result.counts.items())),
        "overlap": overlap_summary(result, config),
    }
    write_manifest(folder, manifest, rebuild_command(config))
