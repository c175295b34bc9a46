"""Speed and rate adherence of the hard compressors on real SQuAD contexts, on CPU.

    python benchmarks/bench_hard_compressors.py --squad ../shared/data/mrqa_dev/SQuAD.jsonl.gz \\
        --target-tokenizer ../shared/data/gpt2_tokenizer [--contexts 200] [--rates 0.5 0.25 0.1]

For each compressor (selective_context at token, phrase and sentence level, llmlingua,
longllmlingua, llmlingua2) and each requested rate, prints the compression time per 1,000
context tokens and the achieved rate (compressed/original TARGET tokens): mean, mean and
95th-percentile absolute error, next to the tolerance the tests assert.

For the LLMLingua methods a second table sets the per-context rate search against a direct
library call at the requested rate (one call, same library arguments): library calls per
context and time relative to the direct call, for the search started cold (at the requested
rate) and warm (from what the contexts before taught it), with the rate error of each and the
share of contexts within the search tolerance. The three run in turn on every context, in a
rotating order, after one warm-up context (``--tables search`` prints only this table).

Compressor models are tiny seeded models built locally (a Llama-style causal LM and a BERT
token classifier, tokenizers trained on contexts that are NOT measured): the real small
models live on the Hugging Face hub. Their scores are arbitrary, so the numbers measure the
mechanics (rate control, overhead), not compression quality; times with real models are
dominated by their forward passes.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from bench.compressors._api import CompressionRequest, TargetModel
from bench.compressors._hard_common import RATE_TOLERANCES

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT / ".." / "shared" / "data"
METHODS = ("selective_context:token", "selective_context:phrase", "selective_context:sentence",
           "llmlingua", "longllmlingua", "llmlingua2")
SEARCHED = ("llmlingua", "longllmlingua", "llmlingua2")
SEARCH_MODES = ("direct", "cold", "warm")


def read_contexts(path: Path, skip: int, limit: int) -> list[tuple[str, str]]:
    """(context, first question) of MRQA contexts ``skip .. skip + limit``."""
    from bench.prepare.mrqa import read_mrqa

    pairs: list[tuple[str, str]] = []
    for index, sample in enumerate(read_mrqa(path)):
        if index >= skip:
            pairs.append((sample.context, sample.questions[0].question))
        if len(pairs) == limit:
            break
    if len(pairs) < limit:
        raise SystemExit(f"{path}: only {len(pairs)} contexts after skipping {skip}")
    return pairs


def build_models(texts: Sequence[str], work_dir: Path) -> dict[str, Path]:
    """Tiny compressor models whose tokenizers are trained on ``texts``."""
    from bench.compressors._hard_tiny import build_tiny_token_classifier
    from bench.tiny import build_tiny_model

    return {
        "causal": build_tiny_model(texts, work_dir / "causal", seed=0),
        "classifier": build_tiny_token_classifier(texts, work_dir / "classifier", seed=0),
    }


def make(method: str, target: TargetModel, models: dict[str, Path], rate: float,
         **options: Any) -> Any:
    """The compressor ``method`` (``selective_context:UNIT`` or a LLMLingua name)."""
    from bench.compressors import llmlingua_family, selective_context

    if method.startswith("selective_context:"):
        options = {"compressor_model": str(models["causal"]), "unit": method.split(":")[1],
                   "rate": rate}
        return selective_context.make_selective_context(target, options)
    model = models["classifier" if method == "llmlingua2" else "causal"]
    factory = getattr(llmlingua_family, f"make_{method}")
    return factory(target, {"compressor_model": str(model), "rate": rate, **options})


def measure(method: str, rate: float, target: TargetModel, models: dict[str, Path],
            pairs: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """One table row: speed and rate adherence of ``method`` at ``rate`` over ``pairs``."""
    compressor = make(method, target, models, rate)
    achieved, seconds, tokens = [], 0.0, 0
    for context, question in tqdm(pairs, desc=f"{method} @ {rate}", leave=False):
        [result] = compressor.compress([CompressionRequest(context, question=question)])
        achieved.append(result.stats.achieved_rate)
        seconds += result.stats.seconds
        tokens += result.stats.original_tokens
    errors = sorted(abs(value - rate) for value in achieved)
    p95 = errors[min(len(errors) - 1, round(0.95 * (len(errors) - 1)))]
    return {
        "method": method, "rate": rate, "contexts": len(pairs),
        "ms_per_1k_tokens": 1e6 * seconds / max(1, tokens),
        "achieved_mean": statistics.fmean(achieved),
        "achieved_sd": statistics.pstdev(achieved),
        "abs_error_mean": statistics.fmean(errors), "abs_error_p95": p95,
        "tolerance_p95": RATE_TOLERANCES[method],
    }


def measure_search(method: str, rate: float, target: TargetModel, models: dict[str, Path],
                   pairs: Sequence[tuple[str, str]], warm_up: tuple[str, str]
                   ) -> dict[str, Any]:
    """One row of the search table: direct call, cold and warm search over ``pairs``."""
    warm = make(method, target, models, rate)
    cold = make(method, target, models, rate, warm_start=False)
    compress = {"direct": warm.compress_direct,
                "cold": lambda request: cold.compress_text([request])[0],
                "warm": lambda request: warm.compress_text([request])[0]}
    request = CompressionRequest(warm_up[0], question=warm_up[1])
    cold.compress_text([request])
    warm.compress_direct(request)
    results: dict[str, list[Any]] = {mode: [] for mode in SEARCH_MODES}
    for index, (context, question) in enumerate(tqdm(pairs, desc=f"search {method} @ {rate}",
                                                     leave=False)):
        request = CompressionRequest(context, question=question)
        for turn in range(len(SEARCH_MODES)):
            mode = SEARCH_MODES[(index + turn) % len(SEARCH_MODES)]
            results[mode].append(compress[mode](request))
    tolerance = warm.settings()["tolerance"]
    direct_seconds = sum(result.stats.seconds for result in results["direct"])
    row: dict[str, Any] = {"method": method, "rate": rate, "contexts": len(pairs),
                           "tolerance": tolerance}
    for mode, mode_results in results.items():
        errors = [abs(result.stats.achieved_rate - rate) for result in mode_results]
        seconds = sum(result.stats.seconds for result in mode_results)
        row[mode] = {
            "calls_per_context": statistics.fmean(r.extra["iterations"] for r in mode_results),
            "ms_per_context": 1e3 * seconds / len(mode_results),
            "time_vs_direct": seconds / direct_seconds,
            "abs_error_mean": statistics.fmean(errors),
            "within_tolerance": statistics.fmean(e <= tolerance + 1e-9 for e in errors),
        }
    return row


def print_search_table(rows: Sequence[dict[str, Any]]) -> None:
    """Direct call against cold and warm search, one line per method and rate."""
    header = (f"{'compressor':<15}{'rate':>6}{'tol':>6}{'n':>5}{'direct ms':>11}"
              f"{'|err|':>7}{'in tol':>8}{'cold calls':>12}{'x direct':>10}{'|err|':>7}"
              f"{'in tol':>8}{'warm calls':>12}{'x direct':>10}{'|err|':>7}{'in tol':>8}")
    print(header)
    print("-" * len(header))
    for row in rows:
        direct, cold, warm = (row[mode] for mode in SEARCH_MODES)
        print(f"{row['method']:<15}{row['rate']:>6.2f}{row['tolerance']:>6.2f}"
              f"{row['contexts']:>5}{direct['ms_per_context']:>11.1f}"
              f"{direct['abs_error_mean']:>7.3f}{direct['within_tolerance']:>8.0%}"
              f"{cold['calls_per_context']:>12.2f}{cold['time_vs_direct']:>10.2f}"
              f"{cold['abs_error_mean']:>7.3f}{cold['within_tolerance']:>8.0%}"
              f"{warm['calls_per_context']:>12.2f}{warm['time_vs_direct']:>10.2f}"
              f"{warm['abs_error_mean']:>7.3f}{warm['within_tolerance']:>8.0%}")
    if rows:
        calls = statistics.fmean(row["warm"]["calls_per_context"] for row in rows)
        ratio = statistics.fmean(row["warm"]["time_vs_direct"] for row in rows)
        print(f"warm search on average: {calls:.2f} library calls per context, "
              f"{ratio:.2f}x the time of a direct call")


def print_table(rows: Sequence[dict[str, Any]]) -> None:
    """The rows as a fixed-width table."""
    header = (f"{'compressor':<27}{'rate':>6}{'n':>5}{'ms/1k tok':>11}{'achieved':>10}"
              f"{'sd':>7}{'|err| mean':>11}{'|err| p95':>10}{'tol p95':>9}  ok")
    print(header)
    print("-" * len(header))
    for row in rows:
        ok = "yes" if row["abs_error_p95"] <= row["tolerance_p95"] else "NO"
        print(f"{row['method']:<27}{row['rate']:>6.2f}{row['contexts']:>5}"
              f"{row['ms_per_1k_tokens']:>11.1f}{row['achieved_mean']:>10.3f}"
              f"{row['achieved_sd']:>7.3f}{row['abs_error_mean']:>11.4f}"
              f"{row['abs_error_p95']:>10.4f}{row['tolerance_p95']:>9.2f}  {ok}")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line flags."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--squad", type=Path,
                        default=SHARED_DATA / "mrqa_dev" / "SQuAD.jsonl.gz",
                        help="MRQA SQuAD dev file (.jsonl or .jsonl.gz) supplying the contexts")
    parser.add_argument("--target-tokenizer", type=Path, default=SHARED_DATA / "gpt2_tokenizer",
                        help="folder of the TARGET tokenizer; rates are counted in its tokens")
    parser.add_argument("--contexts", type=int, default=200,
                        help="contexts measured per compressor and rate (default 200)")
    parser.add_argument("--train-contexts", type=int, default=100,
                        help="earlier contexts used only to train the tiny models' tokenizers")
    parser.add_argument("--rates", type=float, nargs="+", default=[0.5, 0.25, 0.1],
                        help="requested rates (compressed/original target tokens)")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS,
                        help="compressors to measure (default: all)")
    parser.add_argument("--tables", choices=("adherence", "search", "both"), default="both",
                        help="the rate-adherence table, the search-vs-direct table, or both")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads (default 1: tiny models gain nothing)")
    parser.add_argument("--work-dir", type=Path, default=None,
                        help="where the tiny models are built (default: a temporary folder)")
    parser.add_argument("--json", type=Path, default=None,
                        help="also write the rows to this JSON file")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Build the tiny models, measure every compressor at every rate, print the table."""
    import torch
    from transformers import AutoTokenizer

    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    training = [context for context, _ in read_contexts(args.squad, 0, args.train_contexts)]
    pairs = read_contexts(args.squad, args.train_contexts, args.contexts)
    target = TargetModel(args.target_tokenizer.name,
                         AutoTokenizer.from_pretrained(str(args.target_tokenizer)))
    rows: list[dict[str, Any]] = []
    search_rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as scratch:
        models = build_models(training, args.work_dir or Path(scratch))
        start = time.perf_counter()
        for method in args.methods:
            for rate in args.rates:
                if args.tables != "search":
                    rows.append(measure(method, rate, target, models, pairs))
                if args.tables != "adherence" and method in SEARCHED:
                    search_rows.append(measure_search(method, rate, target, models, pairs,
                                                      warm_up=read_contexts(args.squad, 0, 1)[0]))
    print(f"{len(pairs)} SQuAD contexts (MRQA dev, after the first {args.train_contexts}), "
          f"target tokenizer {args.target_tokenizer.name}, tiny local compressor models, "
          f"{args.threads} CPU thread(s), {time.perf_counter() - start:.0f} s in all")
    if rows:
        print_table(rows)
    if search_rows:
        print()
        print_search_table(search_rows)
    if args.json:
        temporary = args.json.with_suffix(".tmp")
        temporary.write_text(json.dumps({"adherence": rows, "search": search_rows}, indent=2),
                             encoding="utf-8")
        temporary.replace(args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
