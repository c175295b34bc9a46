"""500x decoder positions in the compressbench layout: after the memory (default) or at k."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from bench.compressors import CompressionRequest, build_compressor
from bench.compressors._api import TargetModel
from bench.compressors.soft.encoder.checkpoint import CheckpointMismatchError, save_checkpoint
from bench.generation import DecoderPrompt, GenerationSettings
from bench.records import CompressedKV

CONTEXTS = ("Lily saw a big red ball in the park.", "Tom went to the lake.")


def _offsets(target: TargetModel, **options: object) -> list[int]:
    with pytest.warns(UserWarning):
        compressor = build_compressor("500x", target,
                                      {"num_mem": 3, "layout": "compressbench", **options})
    records = compressor.compress([CompressionRequest(c) for c in CONTEXTS])
    assert all(isinstance(r, CompressedKV) for r in records)
    return [r.position_offset for r in records if isinstance(r, CompressedKV)]


def test_default_continues_after_the_memory_and_restart_starts_at_k(
        load_target: Callable[[str], TargetModel]) -> None:
    target = load_target("llama")
    ids = [len(target.tokenizer(c)["input_ids"]) for c in CONTEXTS]
    continued = _offsets(target)
    assert continued[0] > continued[1] > 3 and continued[0] - continued[1] == ids[0] - ids[1]
    assert _offsets(load_target("llama"), decoder_positions="restart") == [3, 3]


def test_restart_decodes_and_is_recorded_in_settings_and_checkpoints(
        load_target: Callable[[str], TargetModel], tmp_path: Path) -> None:
    with pytest.warns(UserWarning):
        compressor = build_compressor("500x", load_target("qwen2"),
                                      {"num_mem": 2, "layout": "compressbench",
                                       "decoder_positions": "restart"})
    assert compressor.settings()["decoder_positions"] == "restart"
    records = compressor.compress([CompressionRequest(CONTEXTS[0])])
    outputs = compressor.generate(  # type: ignore[attr-defined]
        [(records[0], DecoderPrompt("qa", "", "", question="Who?"))],
        GenerationSettings(max_new_tokens=4))
    assert outputs[0].generated_tokens <= 4
    save_checkpoint(compressor.model, tmp_path / "ckpt", "qwen2")  # type: ignore[attr-defined]
    config = json.loads((tmp_path / "ckpt" / "soft_config.json").read_text())
    assert config["layout"]["name"] == "compressbench"
    assert config["layout"]["decoder_positions"] == "restart"
    path = str(tmp_path / "ckpt")
    reloaded = build_compressor("500x", load_target("qwen2"), {"checkpoint": path})
    assert reloaded.settings()["decoder_positions"] == "restart"
    with pytest.raises(CheckpointMismatchError, match="decoder_positions=restart"):
        build_compressor("500x", load_target("qwen2"),
                         {"checkpoint": path, "decoder_positions": "continue"})


def test_decoder_positions_is_refused_where_it_means_nothing(
        load_target: Callable[[str], TargetModel]) -> None:
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="500x only"):
        build_compressor("icae", load_target("llama"),
                         {"variant": "500x-baseline", "decoder_positions": "restart"})
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="must be one of"):
        build_compressor("500x", load_target("llama"),
                         {"layout": "compressbench", "decoder_positions": "sideways"})
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="compressbench only"):
        build_compressor("500x", load_target("llama"), {"decoder_positions": "restart"})
