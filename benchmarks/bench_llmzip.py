"""The information floor: llmzip bits per token and speed, beside every compressor's bits.

    python benchmarks/bench_llmzip.py [--model ../shared/data/stories260K_hf] [--texts 12]
        [--threads 1]

On the demo data's regeneration paragraphs with the real tiny Llama (stories260K), prints:

- ``llmzip``: bits per token of its exact code, against the ideal ``sum(-log2 p)`` of the
  tokens, and the encode and decode speed in tokens/s (every text decoded and checked),
  beside the speed of measuring a code length in one forward pass (what the harness does for
  the kept text of hard methods);
- every compressor at the settings shown: compressed/original tokens and ``compressed_bits``
  per original token (see :mod:`bench.compressors.bits`), and how many times the floor that
  is. Soft compressors run with freshly initialised weights (their size does not depend on
  them); ``gist`` and ``autocompressor`` use the reference checkpoints in
  ``../shared/data/reference`` when present. A compressor that cannot run here (a missing
  optional package or model) is listed as skipped with the reason.

Without the model folder the script says so and exits 0. Timings on a shared machine are
noisy; the bits are deterministic.
"""

from __future__ import annotations

import argparse
import logging
import math
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT / ".." / "shared" / "data"
STORIES = SHARED_DATA / "stories260K_hf"
REFERENCE = SHARED_DATA / "reference"


@dataclass(frozen=True)
class Row:
    """One compressor at its settings; ``model`` None means the target model itself."""

    name: str
    options: dict[str, Any]
    model: Path | None = None


def rows(model: Path) -> list[Row]:
    causal = {"compressor_model": str(model)}
    return [
        Row("none", {}),
        Row("truncate", {"rate": 0.5}),
        Row("random_drop", {"rate": 0.5}),
        Row("selective_context", {"rate": 0.5, **causal}),
        Row("llmlingua", {"rate": 0.5, **causal}),
        Row("longllmlingua", {"rate": 0.5, **causal}),
        Row("500x", {"num_mem": 4}),
        Row("icae", {"num_mem": 4, "variant": "500x-baseline"}),
        Row("cram", {"num_mem": 4, "steps": 0}),
        Row("cram", {"num_mem": 4, "steps": 0, "objective": "kl", "kl_tokens": 8}),
        Row("gist", {}, REFERENCE / "gist" / "checkpoint"),
        Row("autocompressor", {}, REFERENCE / "autocompressor" / "checkpoint"),
    ]


def load_target(path: Path) -> Any:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from bench.compressors import TargetModel

    model = AutoModelForCausalLM.from_pretrained(str(path)).eval()  # type: ignore[no-untyped-call]
    return TargetModel(str(path), AutoTokenizer.from_pretrained(str(path)), model)


def ideal_bits(target: Any, text: str) -> float:
    """sum(-log2 p) of the text's tokens after BOS, from one float64 log-softmax."""
    import torch

    ids = target.tokenizer(text, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logits = target.model(torch.tensor([[target.tokenizer.bos_token_id, *ids[:-1]]]))
    log_p = torch.log_softmax(logits.logits[0].double(), dim=-1)
    return float(-log_p[torch.arange(len(ids)), torch.tensor(ids)].sum()) / math.log(2)


def floor(target: Any, texts: Sequence[str]) -> float:
    """Print llmzip's figures; return its bits per token."""
    from bench.compressors._llmzip_codec import LlmzipCodec

    codec = LlmzipCodec(target.model, target.tokenizer)
    tokens = bits = 0
    ideal = encode_s = decode_s = measure_s = 0.0
    for text in texts:
        began = time.perf_counter()
        code = codec.encode(text)
        encoded = time.perf_counter()
        if codec.decode(code) != text:
            raise SystemExit(f"llmzip: a text did not round-trip: {text[:60]!r}")
        decoded = time.perf_counter()
        codec.code_bits(text)
        measure_s += time.perf_counter() - decoded
        encode_s += encoded - began
        decode_s += decoded - encoded
        tokens += code.n_tokens
        bits += code.bits
        ideal += ideal_bits(target, text)
    print(f"llmzip on {len(texts)} texts, {tokens} tokens (window {codec.window}):")
    print(f"  exact code: {bits / tokens:.3f} bits/token; ideal sum(-log2 p): "
          f"{ideal / tokens:.3f} bits/token (code - ideal: {(bits - ideal) / len(texts):.1f} "
          "bits per text, headers and flush included)")
    print(f"  encode {tokens / encode_s:,.0f} tokens/s, decode {tokens / decode_s:,.0f} tokens/s"
          f" (all {len(texts)} decoded texts equal their inputs); one-pass code length "
          f"{tokens / measure_s:,.0f} tokens/s")
    return bits / tokens


def measure(row: Row, default_model: Path, texts: Sequence[str]) -> tuple[float, float]:
    """(compressed/original tokens, bits per original token) of ``row`` over ``texts``."""
    from bench.compressors import CompressionRequest, build_compressor
    from bench.compressors.bits import BitCounter

    target = load_target(row.model or default_model)
    compressor = build_compressor(row.name, target, row.options)
    results = compressor.compress([CompressionRequest(text) for text in texts])
    count = BitCounter(target)
    bits = [count(result) for result in results]
    if any(b is None for b in bits):
        raise RuntimeError("no bit count for this compression")
    original = sum(r.stats.original_tokens for r in results)
    compressed = sum(r.stats.compressed_tokens for r in results)
    return compressed / original, sum(float(b or 0.0) for b in bits) / original


def label(row: Row) -> str:
    shown = {k: v for k, v in row.options.items() if k != "compressor_model"}
    return f"{row.name} " + ",".join(f"{k}={v}" for k, v in shown.items())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=STORIES)
    parser.add_argument("--texts", type=int, default=None, help="first N paragraphs (all)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    if not args.model.is_dir():
        print(f"skipped: no model folder at {args.model} (the real tiny Llama lives in "
              "../shared/data in developer checkouts)")
        return 0
    import torch
    from transformers.utils import logging as transformers_logging

    from bench.demo_data import demo_regeneration_records

    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning)
    logging.getLogger("bench.compressors").setLevel(logging.ERROR)
    transformers_logging.set_verbosity_error()  # type: ignore[no-untyped-call]
    transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    texts = [record["text"] for record in demo_regeneration_records()][:args.texts]
    floor_bits = floor(load_target(args.model), texts)
    print(f"\n{'compressor at its settings':<58} {'tokens':>7} {'bits/token':>11} {'x floor':>8}")
    print(f"{'llmzip (lossless floor)':<58} {1.0:>7.3f} {floor_bits:>11.3f} {1.0:>8.2f}")
    for row in rows(args.model):
        if row.model is not None and not row.model.is_dir():
            print(f"{label(row):<58} skipped: no checkpoint at {row.model}")
            continue
        try:
            ratio, per_token = measure(row, args.model, texts)
        except (ImportError, OSError, ValueError, RuntimeError) as error:
            print(f"{label(row):<58} skipped: {str(error).splitlines()[0][:80]}")
            continue
        print(f"{label(row):<58} {ratio:>7.3f} {per_token:>11.3f} {per_token / floor_bits:>8.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
