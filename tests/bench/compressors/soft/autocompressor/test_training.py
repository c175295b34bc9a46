"""AutoCompressor training: segment lengths, a fine-tuning run that lowers the dev loss, and
its checkpoint read back by the ``autocompressor`` compressor."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from bench.compressors import CompressionRequest, build_compressor
from bench.compressors._api import TargetModel
from bench.compressors.soft.autocompressor.checkpoint import SUMMARY_WEIGHT
from bench.compressors.soft.autocompressor.training import ARCHITECTURE, random_segment_lengths
from bench.train import main
from bench.training.synthetic import write_opening_qa
from tests.conftest import read_results, read_samples, run_stock_lm_eval

SUMMARY_LENGTH = 4
TASK = "compressed_squad"
LIMIT = 2


def test_random_segment_lengths_cover_the_slice() -> None:
    generator = torch.Generator().manual_seed(0)
    draws = [random_segment_lengths(50, 3, 30, generator) for _ in range(20)]
    assert all(sum(lengths) == 50 and len(lengths) == 3 for lengths in draws)
    assert all(min(lengths) >= 10 and max(lengths) <= 30 for lengths in draws)
    assert len({tuple(lengths) for lengths in draws}) > 1
    assert random_segment_lengths(7, 1, 30, generator) == [7]


@pytest.fixture(scope="module")
def trained(story_corpus: Path, stories: Path, tmp_path_factory: pytest.TempPathFactory
            ) -> Path:
    root = tmp_path_factory.mktemp("autocompressor")
    out = root / "run"
    assert main(["finetune", "--method", "autocompressor", "--num-mem", str(SUMMARY_LENGTH),
                 "--base", str(stories), "--data", str(write_opening_qa(story_corpus, root / "qa")),
                 "--out", str(out), "--steps", "30", "--lr", "1e-3", "--batch-size", "4",
                 "--warmup-steps", "2", "--eval-every", "30", "--max-context-tokens", "128",
                 "--max-answer-tokens", "16", "--dev-size", "16", "--no-progress"]) == 0
    return out


@pytest.mark.slow
def test_autocompressor_training_lowers_dev_loss_and_loads(trained: Path) -> None:
    from safetensors import safe_open
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = trained
    history = json.loads((out / "metrics.json").read_text())
    assert [entry["step"] for entry in history] == [0, 30]
    assert history[-1]["dev_loss"] < 0.9 * history[0]["dev_loss"]

    final = out / "final"
    config = json.loads((final / "config.json").read_text())
    assert config["architectures"] == [ARCHITECTURE]
    assert (config["summary_length"], config["accumulate_summary"]) == (SUMMARY_LENGTH, True)
    with safe_open(str(final / "model.safetensors"), framework="pt") as handle:
        hidden = config["hidden_size"]
        assert list(handle.get_tensor(SUMMARY_WEIGHT).shape) == [SUMMARY_LENGTH, hidden]
    tokenizer = AutoTokenizer.from_pretrained(str(final))
    model = AutoModelForCausalLM.from_pretrained(str(final)).eval()  # type: ignore[no-untyped-call]
    compressor = build_compressor("autocompressor", TargetModel(str(final), tokenizer, model),
                                  {"segment_length": 20})
    context = "Tom had a red ball. He played with it in the park all day."
    compressed = compressor.compress([CompressionRequest(context=context)])[0]
    segments = -(-len(tokenizer(context)["input_ids"]) // 20)
    assert compressed.stats.compressed_tokens == SUMMARY_LENGTH * segments


@pytest.mark.slow
def test_trained_autocompressor_runs_through_stock_lm_eval(trained: Path, tmp_path: Path
                                                           ) -> None:
    from bench.demo import prepare_demo_data

    final = trained / "final"
    prepare_demo_data(final, tmp_path / "data")
    run_stock_lm_eval(f"pretrained={final},compressor=autocompressor,compression_cache=off",
                      tmp_path / "data", tmp_path / "eval", TASK, LIMIT)
    results = read_results(tmp_path / "eval")
    settings = results["config"]["compressbench"]["compressor"]["settings"]  # type: ignore[index]
    segment = settings["segment_length"]  # by default the segment length it was trained on
    assert segment == json.loads((final / "config.json").read_text())["training_segment_length"]
    samples = read_samples(tmp_path / "eval", TASK)
    assert len(samples) == LIMIT
    for sample in samples:  # one summary per segment of the encoded context
        segments = -(-int(sample["encoded_context_tokens"]) // segment)
        assert sample["compressed_tokens"] == SUMMARY_LENGTH * segments
