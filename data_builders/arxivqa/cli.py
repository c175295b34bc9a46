"""``python -m bench.build_arxivqa``: generate extractive QA pairs from a corpus split."""

from __future__ import annotations

import argparse
import os
import traceback
from collections.abc import Sequence
from pathlib import Path

from bench.substrate.errors import InputError, add_debug_flag, run_cli
from bench.substrate.help import HelpFormatter
from data_builders._secrets import MIN_SECRET_LENGTH, masked_output, register_secret
from data_builders.arxivqa.build import IncompleteError, generate
from data_builders.arxivqa.card import estimated_cost
from data_builders.arxivqa.client import ClientSettings
from data_builders.arxivqa.config import QAConfig, QAResult
from data_builders.arxivqa.prompt import load_template


def make_parser() -> argparse.ArgumentParser:
    """The argument parser (every flag documented in ``--help``)."""
    p = argparse.ArgumentParser(
        prog="python -m bench.build_arxivqa",
        formatter_class=HelpFormatter,
        description="Generate ArxivQA: extractive QA pairs for each abstract of a corpus split "
        "by an LLM behind any OpenAI-compatible endpoint. Answers are cached per request "
        "(model + prompt hash) in OUT/cache, so an interrupted run resumes where it stopped.",
    )
    p.add_argument("--corpus", type=Path, required=True, help="folder built by bench.build_arxiv")
    p.add_argument(
        "--split",
        default="test",
        help="corpus file to read, <corpus>/<split>.parquet: train, dev, test or "
        "test_len480 ... (default test)",
    )
    p.add_argument("--model", required=True, help="model name sent to the endpoint")
    p.add_argument(
        "--base-url",
        required=True,
        help="OpenAI-compatible endpoint, e.g. https://api.openai.com/v1 or "
        "http://localhost:8000/v1 (vLLM)",
    )
    p.add_argument(
        "--api-key-env",
        default="OPENAI_API_KEY",
        help="environment variable holding the API key (default OPENAI_API_KEY); "
        "the key is never written anywhere, and any text that contains it (a server's "
        "error message, a log line) shows *** instead",
    )
    p.add_argument("--out", type=Path, required=True, help="output folder (holds the cache)")
    p.add_argument(
        "--prompt-file",
        type=Path,
        default=None,
        help="prompt template with {truncated_context} and {number} (default: the paper's prompt)",
    )
    p.add_argument(
        "--qa-per-96-tokens",
        type=float,
        default=5.0,
        help="QA pairs asked per 96 tokens of context (default 5)",
    )
    p.add_argument(
        "--max-contexts",
        type=int,
        default=None,
        help="only the first N contexts by id (default all)",
    )
    p.add_argument("--concurrency", type=int, default=4, help="requests in flight (default 4)")
    p.add_argument(
        "--timeout",
        type=float,
        default=120.0,
        help="seconds before a request is abandoned and retried (default 120)",
    )
    p.add_argument(
        "--max-retries",
        type=int,
        default=6,
        help="retries per request after 429/5xx/timeouts (default 6)",
    )
    p.add_argument(
        "--backoff",
        type=float,
        default=2.0,
        help="first retry wait in seconds, doubled each time; a Retry-After header "
        "overrides it (default 2)",
    )
    p.add_argument("--temperature", type=float, default=0.0,
                   help="sampling temperature (default 0)")
    p.add_argument("--max-tokens", type=int, default=2048,
                   help="max tokens per reply (default 2048)")
    p.add_argument(
        "--price-input",
        type=float,
        default=None,
        help="USD per million prompt tokens, for the cost estimate (default: none, no estimate)",
    )
    p.add_argument(
        "--price-output",
        type=float,
        default=None,
        help="USD per million completion tokens, for the cost estimate (default: none, no "
        "estimate)",
    )
    add_debug_flag(p)
    return p


def config_from_args(args: argparse.Namespace) -> QAConfig:
    """Build the config; the key is read from the named environment variable."""
    api_key = os.environ.get(args.api_key_env)
    if not api_key:
        raise InputError(
            f"environment variable {args.api_key_env} is not set (name another one with "
            "--api-key-env; for a server without authentication set it to any value)"
        )
    register_secret(api_key)
    if len(api_key) >= MIN_SECRET_LENGTH and api_key in args.base_url:
        raise InputError(
            "--base-url contains the API key; pass the key only through the variable "
            "named by --api-key-env"
        )
    if args.concurrency < 1 or args.qa_per_96_tokens <= 0:
        raise InputError("--concurrency must be >= 1 and --qa-per-96-tokens > 0")
    client = ClientSettings(
        base_url=args.base_url,
        api_key=api_key,
        model=args.model,
        concurrency=args.concurrency,
        timeout=args.timeout,
        max_retries=args.max_retries,
        backoff=args.backoff,
        temperature=args.temperature,
        max_tokens=args.max_tokens,
    )
    return QAConfig(
        corpus=args.corpus,
        split=args.split,
        out=args.out,
        template=load_template(args.prompt_file),
        client=client,
        qa_per_96_tokens=args.qa_per_96_tokens,
        max_contexts=args.max_contexts,
        price_input=args.price_input,
        price_output=args.price_output,
    )


def _summary(config: QAConfig, result: QAResult) -> str:
    u = result.usage
    questions = sum(len(pairs) for _, pairs in result.contexts)
    cost = estimated_cost(
        config, {"prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens}
    )
    return (
        f"requests sent {u.requests_sent} (answered {u.answered}, from cache {u.cached}, "
        f"retries {u.retries}, rate-limited {u.rate_limited}, timeouts {u.timeouts}, "
        f"server errors {u.server_errors}, failed {u.failed}); tokens this run: prompt "
        f"{u.prompt_tokens}, completion {u.completion_tokens}"
        + (f"; est. cost ${cost:.4f}" if cost is not None else "")
        + f"\n{len(result.contexts)} contexts, {questions} questions, rejected "
        f"{sum(result.rejected.values())} pairs {dict(sorted(result.rejected.items()))}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; 0 ok, 1 requests failed (rerun resumes), 2 bad arguments or input.

    Errors end in one line on stderr; ``--debug`` (or ``COMPRESSBENCH_DEBUG=1``) adds the
    traceback.
    """
    with masked_output():
        try:
            return run_cli(_run, argv, failures=(IncompleteError, OSError))
        except Exception:  # a bug; printed here so that its traceback is masked too
            traceback.print_exc()
            return 1


def _run(argv: Sequence[str]) -> int:
    args = make_parser().parse_args(argv)
    config = config_from_args(args)
    result = generate(config)
    print(_summary(config, result))
    print(f"wrote {config.out}")
    return 0
