"""How many of a context's tokens each soft compressor reads: a context longer than it
encodes is cut (and says so), or encoded in segments where the method segments it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bench.compressors import CompressionRequest
from bench.compressors._api import TargetModel
from bench.records import CompressionStats

LONG = "Lily saw a big red ball in the park. She wanted to play with it all day long."
SHORT = "Lily ran."
KEPT = 10
# Each method cut to KEPT context tokens (ICAE v2 counts its <s> in the cut,
# AutoCompressor the special tokens its tokenizer adds: see _options).
CUTTING: dict[str, dict[str, Any]] = {
    "500x": {"num_mem": 2, "max_context_tokens": KEPT},
    "icae": {"variant": "500x-baseline", "num_mem": 2, "max_context_tokens": KEPT},
    "icae-v2": {"num_mem": 2, "lora_r": 4, "max_context_tokens": KEPT + 1},
    "cram": {"num_mem": 1, "steps": 1, "max_context_tokens": KEPT},
    "autocompressor": {"max_context_tokens": KEPT},
}
Load = Callable[..., tuple[Any, TargetModel]]


def _stats(compressor: Any, context: str) -> CompressionStats:
    (compressed,) = compressor.compress([CompressionRequest(context)])
    stats: CompressionStats = compressed.stats
    return stats


def _options(method: str, folders: dict[str, Path]) -> dict[str, Any]:
    if method != "autocompressor":
        return CUTTING[method]
    from transformers import AutoTokenizer

    added = len(AutoTokenizer.from_pretrained(str(folders[method]))("")["input_ids"])
    return {"max_context_tokens": KEPT + added}


@pytest.mark.parametrize("method", list(CUTTING))
def test_a_context_longer_than_the_compressor_reads_is_cut_and_counted(
        load_method: Load, chat_eos_dirs: dict[str, Path], method: str) -> None:
    compressor, target = load_method(method, **_options(method, chat_eos_dirs))
    long = _stats(compressor, LONG)
    assert long.original_tokens == target.count_tokens(LONG) > KEPT
    assert long.encoded_tokens == KEPT and long.cut_by_compressor
    short = _stats(compressor, SHORT)
    assert short.encoded_tokens == short.original_tokens == target.count_tokens(SHORT) < KEPT
    assert not short.cut_by_compressor


def test_gist_reads_the_whole_context(load_method: Load) -> None:
    compressor, target = load_method("gist", num_gist_tokens=1)
    stats = _stats(compressor, LONG)
    assert stats.encoded_tokens == stats.original_tokens == target.count_tokens(LONG)


def _with_segment_length(folder: Path, out: Path, length: int | None) -> Path:
    """A copy of the AutoCompressor checkpoint ``folder`` recording ``length`` as the segment
    length it was trained on (None: no record, as in the published checkpoints)."""
    import shutil

    from bench.compressors.soft.autocompressor.checkpoint import TRAINING_SEGMENT_LENGTH

    shutil.copytree(folder, out)
    config = json.loads((out / "config.json").read_text())
    assert TRAINING_SEGMENT_LENGTH not in config
    if length is not None:
        config[TRAINING_SEGMENT_LENGTH] = length
    (out / "config.json").write_text(json.dumps(config))
    return out


def test_autocompressor_segments_a_context_as_its_training_did(
        chat_eos_dirs: dict[str, Path], tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from bench.compressors import build_compressor

    def compress(length: int | None) -> tuple[Any, Any]:
        folder = _with_segment_length(chat_eos_dirs["autocompressor"], tmp_path / str(length),
                                      length)
        model = AutoModelForCausalLM.from_pretrained(str(folder))  # type: ignore[no-untyped-call]
        target = TargetModel(folder.name, AutoTokenizer.from_pretrained(str(folder)), model)
        compressor = build_compressor("autocompressor", target, {})
        (compressed,) = compressor.compress([CompressionRequest(LONG)])
        return compressor, compressed

    published, whole = compress(None)
    assert published.settings()["segment_length"] is None and whole.extra["segments"] == 1
    trained, segmented = compress(KEPT)
    ids = whole.extra["context_ids"]
    assert trained.settings()["segment_length"] == KEPT
    assert segmented.extra["segments"] == -(-ids // KEPT) > 1
    assert segmented.stats.encoded_tokens == segmented.stats.original_tokens
    assert segmented.embeddings.shape[0] == 2 * segmented.extra["segments"]


def test_an_autocompressor_run_records_the_segment_length_it_trained_on() -> None:
    from bench.compressors.soft.autocompressor.training import training_segment_length
    from bench.training.config import TrainConfig

    config = TrainConfig(stage="pretrain", method="autocompressor", base="b", data="d", out="o",
                         max_context_tokens=100, training_substeps=2, segments_per_substep=3)
    assert training_segment_length(config) == 17  # 100 tokens over 6 segments, rounded up
