"""Gist training: the attention mask, a run that lowers the dev loss, and its checkpoint read
back by the ``gist`` compressor (and, marked slow, through the stock ``lm_eval`` command)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from bench.compressors import CompressionRequest, build_compressor
from bench.compressors._api import TargetModel
from bench.train import main
from bench.training.gist_method import GistTrainingModel, additive_mask, gist_attention

GIST_ID = 7
NUM_GIST = 2


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


def _train(corpus: Path, stories: Path, out: Path, *extra: str) -> list[dict[str, float]]:
    assert main(["pretrain", "--method", "gist", "--num-mem", "4", "--base", str(stories),
                 "--data", str(corpus), "--out", str(out), "--steps", "40", "--lr", "1e-3",
                 "--batch-size", "4", "--warmup-steps", "2", "--eval-every", "0",
                 "--max-context-tokens", "64", "--dev-size", "16", *extra]) == 0
    losses: list[dict[str, float]] = json.loads((out / "metrics.json").read_text())["dev_loss"]
    return losses


def test_gist_training_lowers_dev_loss_and_loads(story_corpus: Path, stories: Path,
                                                  tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    losses = _train(story_corpus, stories, tmp_path / "run")
    assert [entry["step"] for entry in losses] == [0, 40]
    assert losses[-1]["loss"] < 0.9 * losses[0]["loss"]
    final = tmp_path / "run" / "final"
    config = json.loads((final / "config.json").read_text())
    assert config["num_gist_tokens"] == 4
    tokenizer = AutoTokenizer.from_pretrained(str(final))
    assert "<GIST>" in tokenizer.get_added_vocab()
    model = AutoModelForCausalLM.from_pretrained(str(final)).eval()  # type: ignore[no-untyped-call]
    target = TargetModel(str(final), tokenizer, model)
    compressor = build_compressor("gist", target, {"num_gist_tokens": 4})
    request = CompressionRequest(context="Tom had a red ball.", question="What did Tom have?")
    compressed = compressor.compress([request])[0]
    assert compressed.stats.compressed_tokens == 4
