"""Gist training: the attention mask, a run that lowers the dev loss, and its checkpoint read
back by the ``gist`` compressor (and, marked slow, through the stock ``lm_eval`` command)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from bench.compressors import CompressionRequest, build_compressor
from bench.compressors._api import TargetModel
from bench.compressors.soft.gist.training import GistTrainingModel, additive_mask, gist_attention
from bench.train import main
from tests.conftest import read_results, read_samples, run_stock_lm_eval

GIST_ID = 7
NUM_GIST = 2
NUM_TRAINED = 4
TASK = "compressed_squad"
LIMIT = 2


def _tiny_llama() -> Any:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=16, hidden_size=16, intermediate_size=32,
                         num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                         max_position_embeddings=32)
    return LlamaForCausalLM(config).eval()  # type: ignore[no-untyped-call]


def _cached_gist_logits(model: Any, ids: torch.Tensor, gist_end: int) -> torch.Tensor:
    """Post-gist logits computed from the gist tokens' keys/values alone (the compressor's
    way): the context's own keys/values are dropped from the cache."""
    from transformers import DynamicCache

    prefix = model(input_ids=ids[:, :gist_end], use_cache=True).past_key_values
    kept = DynamicCache()
    for index, layer in enumerate(prefix.layers):
        start = gist_end - NUM_GIST
        kept.update(layer.keys[:, :, start:], layer.values[:, :, start:], index)
    rest = ids[:, gist_end:]
    positions = torch.arange(gist_end, ids.shape[1])[None]
    out = model(input_ids=rest, past_key_values=kept, position_ids=positions,
                attention_mask=torch.ones(1, NUM_GIST + rest.shape[1], dtype=torch.long))
    logits: torch.Tensor = out.logits
    return logits


def test_tokens_after_the_gist_read_the_context_only_through_it() -> None:
    model = _tiny_llama()
    ids = torch.tensor([[1, 3, 4, 5, 6, GIST_ID, GIST_ID, 9, 10, 11]])
    gist_end = 7
    trained = GistTrainingModel(model, GIST_ID)
    with torch.no_grad():
        masked = trained.logits(ids, torch.ones_like(ids))[:, gist_end:]
        cached = _cached_gist_logits(model, ids, gist_end)
        plain = model(input_ids=ids).logits[:, gist_end:]
    torch.testing.assert_close(masked, cached, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(plain, cached, atol=1e-3)  # the context does matter unmasked


def test_gist_mask_rows() -> None:
    ids = torch.tensor([[1, 3, GIST_ID, 9, 2]])
    valid = torch.tensor([[1, 1, 1, 1, 0]])
    allowed = gist_attention(ids, GIST_ID, valid)[0, 0]
    causal = torch.ones(5, 5, dtype=torch.bool).tril()
    assert torch.equal(allowed[:3], causal[:3])  # up to the gist: plain causal
    assert allowed[3].tolist() == [False, False, True, True, False]
    assert not allowed[:4, 4].any()  # the padding key is hidden from real tokens
    blocked = additive_mask(allowed, torch.float32)
    assert blocked[3, 0] == torch.finfo(torch.float32).min and blocked[3, 2] == 0.0


@pytest.fixture(scope="module")
def trained(story_corpus: Path, stories: Path, tmp_path_factory: pytest.TempPathFactory
            ) -> Path:
    out = tmp_path_factory.mktemp("gist") / "run"
    assert main(["pretrain", "--method", "gist", "--num-mem", str(NUM_TRAINED), "--base",
                 str(stories), "--data", str(story_corpus), "--out", str(out), "--steps", "40",
                 "--lr", "1e-3", "--batch-size", "4", "--warmup-steps", "2", "--eval-every",
                 "40", "--max-context-tokens", "64", "--dev-size", "16", "--no-progress"]) == 0
    return out


@pytest.mark.slow
def test_gist_training_lowers_dev_loss_and_loads(trained: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    history = json.loads((trained / "metrics.json").read_text())
    assert [entry["step"] for entry in history] == [0, 40]
    assert history[-1]["dev_loss"] < 0.9 * history[0]["dev_loss"]
    final = trained / "final"
    config = json.loads((final / "config.json").read_text())
    assert config["num_gist_tokens"] == NUM_TRAINED
    tokenizer = AutoTokenizer.from_pretrained(str(final))
    assert "<GIST>" in tokenizer.get_added_vocab()
    model = AutoModelForCausalLM.from_pretrained(str(final)).eval()  # type: ignore[no-untyped-call]
    target = TargetModel(str(final), tokenizer, model)
    compressor = build_compressor("gist", target, {"num_gist_tokens": NUM_TRAINED})
    request = CompressionRequest(context="Tom had a red ball.", question="What did Tom have?")
    compressed = compressor.compress([request])[0]
    assert compressed.stats.compressed_tokens == NUM_TRAINED


@pytest.mark.slow
def test_trained_gist_model_runs_through_stock_lm_eval(trained: Path, tmp_path: Path) -> None:
    from bench.demo import prepare_demo_data

    final = trained / "final"
    prepare_demo_data(final, tmp_path / "data")
    run_stock_lm_eval(f"pretrained={final},compressor=gist,num_gist_tokens={NUM_TRAINED},"
                      "compression_cache=off", tmp_path / "data", tmp_path / "eval", TASK, LIMIT)
    results = read_results(tmp_path / "eval")
    assert results["results"][TASK]["compressed_tokens,none"] == NUM_TRAINED
    assert len(read_samples(tmp_path / "eval", TASK)) == LIMIT


def test_lora_gist_run_saves_a_merged_model(story_corpus: Path, stories: Path,
                                            tmp_path: Path) -> None:
    from safetensors import safe_open

    out = tmp_path / "lora"
    assert main(["pretrain", "--method", "gist", "--lora", "--lora-r", "4", "--base",
                 str(stories), "--data", str(story_corpus), "--out", str(out), "--steps", "2",
                 "--batch-size", "2", "--eval-every", "0", "--max-context-tokens", "32",
                 "--dev-size", "4"]) == 0
    with safe_open(str(out / "final" / "model.safetensors"), framework="pt") as handle:
        names = list(handle.keys())
    with safe_open(str(stories / "model.safetensors"), framework="pt") as handle:
        assert sorted(names) == sorted(handle.keys())
