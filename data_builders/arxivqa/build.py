"""Generate ArxivQA from a corpus split: plan requests, run them (cached), assemble, write.

The corpus folder is read only when it matches its manifest; the output folder is written
as one unit (the response cache in ``OUT/cache`` carries over), so a killed or failed run
leaves the previous complete output in place.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from bench.prepare.data_dir import CORPUS_REBUILD
from bench.prepare.prepared_io import QA_SCHEMA as PREPARED_QA_SCHEMA
from bench.substrate.atomic import atomic_directory, atomic_write_text
from bench.substrate.errors import CompressbenchError, InputError
from bench.substrate.hashing import sha256_file
from bench.substrate.manifest import MANIFEST_NAME, verify_folder
from bench.substrate.parquet import write_parquet
from data_builders.arxivqa.cache import ResponseCache, request_key
from data_builders.arxivqa.client import Job, Usage, run_jobs
from data_builders.arxivqa.config import Context, QAConfig, QAResult
from data_builders.arxivqa.prompt import pairs_for, render
from data_builders.arxivqa.validate import extract_pairs, validate

# The prepared-QA columns (so the Parquet feeds the tasks directly) plus the answer offset.
QA_SCHEMA = PREPARED_QA_SCHEMA.insert(
    PREPARED_QA_SCHEMA.get_field_index("source"), pa.field("answer_start", pa.int64())
)
CACHE_DIR = "cache"
OUTPUT_ENTRIES = ("*.jsonl", "*.parquet", "README.md", MANIFEST_NAME)


class NoQuestionsError(InputError):
    """Every generated pair was rejected: there is no dataset to write."""


def load_contexts(config: QAConfig) -> list[Context]:
    """The corpus split's rows (sorted by id, optionally the first ``max_contexts``)."""
    path = config.corpus / f"{config.split}.parquet"
    if not path.is_file():
        raise FileNotFoundError(
            f"--corpus {config.corpus}: no {path.name} (built by bench.build_arxiv)"
        )
    verify_folder(config.corpus, CORPUS_REBUILD, required=(path.name,))
    table = pq.read_table(path)
    for column in ("id", "text", "n_tokens"):
        if column not in table.column_names:
            raise InputError(f"{path}: missing column {column!r}")
    rows = sorted(
        zip(
            table.column("id").to_pylist(),
            table.column("text").to_pylist(),
            table.column("n_tokens").to_pylist(),
            strict=True,
        )
    )
    if config.max_contexts is not None:
        rows = rows[: config.max_contexts]
    return [Context(i, t, n, pairs_for(n, config.qa_per_96_tokens)) for i, t, n in rows]


def plan(contexts: list[Context], config: QAConfig) -> list[Job]:
    """One request per context."""
    jobs = []
    for context in contexts:
        prompt = render(config.template, context.text, context.number)
        jobs.append(Job(context.id, prompt, request_key(config.client.model, prompt)))
    return jobs


def assemble(contexts: list[Context], jobs: list[Job], cache: ResponseCache) -> QAResult:
    """Parse and validate every cached answer, in corpus order (deterministic)."""
    result = QAResult()
    for context, job in zip(contexts, jobs, strict=True):
        entry = cache.get(job.key)
        if entry is None:
            raise RuntimeError(f"no cached answer for context {context.id}")
        result.total_tokens["prompt_tokens"] += entry["usage"]["prompt_tokens"]
        result.total_tokens["completion_tokens"] += entry["usage"]["completion_tokens"]
        raw = extract_pairs(entry["content"])
        if raw is None:
            result.rejected["unparseable_response"] += 1
            continue
        pairs = validate(raw, context.text, result.rejected)
        if len(pairs) > context.number:
            result.rejected["beyond_requested_number"] += len(pairs) - context.number
            pairs = pairs[: context.number]
        if pairs:
            result.contexts.append((context, pairs))
    return result


def qid(context_id: str, index: int) -> str:
    """Question id: the context id and the pair's position."""
    return f"{context_id}-q{index:03d}"


def mrqa_lines(result: QAResult, split: str) -> str:
    """MRQA 2019 JSONL: a header line, then one line per context (char spans inclusive)."""
    lines = [json.dumps({"header": {"dataset": "ArxivQA", "split": split}})]
    for context, pairs in result.contexts:
        qas = [
            {
                "qid": qid(context.id, i),
                "id": qid(context.id, i),
                "question": pair.question,
                "answers": [pair.answer],
                "detected_answers": [
                    {"text": pair.answer, "char_spans": [[pair.start, pair.end - 1]]}
                ],
            }
            for i, pair in enumerate(pairs)
        ]
        lines.append(
            json.dumps(
                {"id": context.id, "context_id": context.id, "context": context.text, "qas": qas},
                ensure_ascii=False,
            )
        )
    return "\n".join(lines) + "\n"


def qa_table(result: QAResult) -> pa.Table:
    """One row per question, in the prepared-benchmark columns (plus ``answer_start``)."""
    rows: dict[str, list[Any]] = {name: [] for name in QA_SCHEMA.names}
    for context, pairs in result.contexts:
        for i, pair in enumerate(pairs):
            for name, value in (
                ("qid", qid(context.id, i)),
                ("context_id", context.id),
                ("context", context.text),
                ("question", pair.question),
                ("answers", [pair.answer]),
                ("answer_start", pair.start),
                ("source", "ArxivQA"),
                ("context_tokens", context.n_tokens),
            ):
                rows[name].append(value)
    return pa.table(rows, schema=QA_SCHEMA)


def generate(config: QAConfig) -> QAResult:
    """Run the whole generation; raises if requests failed (answers so far stay cached)."""
    with atomic_directory(config.out, keep=(CACHE_DIR,), owned=OUTPUT_ENTRIES) as staging:
        return _generate_into(config, staging)


def _generate_into(config: QAConfig, folder: Path) -> QAResult:
    from data_builders.arxivqa import card

    contexts = load_contexts(config)
    jobs = plan(contexts, config)
    cache = ResponseCache(config.out / CACHE_DIR)
    usage = Usage()
    asyncio.run(run_jobs(jobs, config.client, cache, usage))
    if usage.failed:
        raise IncompleteError(usage)
    result = assemble(contexts, jobs, cache)
    result.usage = usage
    if not result.contexts:
        raise NoQuestionsError(
            f"no usable question from {len(contexts)} contexts of {config.corpus}: rejected "
            f"{dict(sorted(result.rejected.items()))}; nothing written ({config.out} left as it "
            "was; answers stay cached)"
        )
    jsonl = folder / f"{config.split}.jsonl"
    atomic_write_text(jsonl, mrqa_lines(result, config.split))
    write_parquet(qa_table(result), folder / f"{config.split}.parquet")
    for path in (jsonl, folder / f"{config.split}.parquet"):
        result.files[path.name] = sha256_file(path)
    card.write_card_and_manifest(config, result, len(jobs), folder)
    return result


class IncompleteError(CompressbenchError, RuntimeError):
    """Some requests failed after all retries; rerunning resumes from the cache."""

    def __init__(self, usage: Usage) -> None:
        super().__init__(
            f"{usage.failed} request(s) failed after retries (first: {usage.errors[:1]}); "
            f"{usage.answered + usage.cached} answers are cached: rerun to retry the rest"
        )
        self.usage = usage
