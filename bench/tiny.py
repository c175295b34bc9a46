"""Tiny models built locally (no download) for the demo, tests and examples.

The tokenizer is a byte-level BPE trained on the given texts; the model is a randomly
initialised (seeded) Llama or Qwen2 of a few hundred thousand parameters by default (larger
ones from :data:`MODEL_SIZES` for benchmarks), saved with safetensors so that
``AutoModelForCausalLM.from_pretrained(path)`` loads it offline.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

Architecture = Literal["llama", "qwen2"]

SPECIAL_TOKENS = ("<unk>", "<s>", "</s>", "<pad>")


@dataclass(frozen=True)
class ModelSize:
    """The shape arguments of :func:`build_tiny_model`."""

    hidden_size: int = 64
    num_layers: int = 2
    num_heads: int = 4
    num_kv_heads: int = 2
    intermediate_size: int | None = None
    vocab_size: int = 512


MODEL_SIZES = {
    "tiny": ModelSize(),
    # GPT-2-small depth and width. The small vocabulary keeps the tokenizer of the tiny model,
    # so that the demo data prepared for one serves the other.
    "100m": ModelSize(hidden_size=768, num_layers=12, num_heads=12, num_kv_heads=4,
                      intermediate_size=3072),
}


def train_tokenizer(texts: Iterable[str], out_dir: Path, vocab_size: int = 512) -> Path:
    """Train a byte-level BPE tokenizer on ``texts`` and save it to ``out_dir``.

    Saved with ``tokenizer_class: PreTrainedTokenizerFast`` so that transformers 4.x and 5.x
    both load it. BOS is ``<s>``, EOS ``</s>``, padding ``<pad>``.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(list(texts), trainer=trainer)
    fast = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=tokenizer,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(str(out_dir))
    _force_portable_tokenizer_class(out_dir)
    return out_dir


def _force_portable_tokenizer_class(out_dir: Path) -> None:
    config_path = out_dir / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True), encoding="utf-8")


def build_tiny_model(
    texts: Iterable[str],
    out_dir: Path,
    architecture: Architecture = "llama",
    seed: int = 0,
    hidden_size: int = 64,
    num_layers: int = 2,
    max_positions: int = 1024,
    vocab_size: int = 512,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    intermediate_size: int | None = None,
) -> Path:
    """Build, seed and save a tiny causal LM with a tokenizer trained on ``texts``.

    ``intermediate_size`` defaults to twice ``hidden_size``.
    """
    import torch
    from transformers import (
        AutoTokenizer,
        LlamaConfig,
        LlamaForCausalLM,
        Qwen2Config,
        Qwen2ForCausalLM,
    )

    train_tokenizer(texts, out_dir, vocab_size=vocab_size)
    tokenizer = AutoTokenizer.from_pretrained(str(out_dir))
    common = {
        "vocab_size": len(tokenizer),
        "hidden_size": hidden_size,
        "intermediate_size": intermediate_size or hidden_size * 2,
        "num_hidden_layers": num_layers,
        "num_attention_heads": num_heads,
        "num_key_value_heads": num_kv_heads,
        "max_position_embeddings": max_positions,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        "tie_word_embeddings": False,
    }
    torch.manual_seed(seed)
    model: torch.nn.Module
    if architecture == "llama":
        model = LlamaForCausalLM(LlamaConfig(**common))
    else:
        model = Qwen2ForCausalLM(Qwen2Config(**common))
    model.eval()  # type: ignore[no-untyped-call]
    model.save_pretrained(str(out_dir), safe_serialization=True)
    return out_dir


def build_model_of_size(texts: Iterable[str], out_dir: Path, size: str,
                        architecture: Architecture = "llama", seed: int = 0) -> Path:
    """:func:`build_tiny_model` with the shape named ``size`` in :data:`MODEL_SIZES`."""
    if size not in MODEL_SIZES:
        raise ValueError(f"unknown model size {size!r}; choose one of {sorted(MODEL_SIZES)}")
    return build_tiny_model(texts, out_dir, architecture=architecture, seed=seed,
                            **asdict(MODEL_SIZES[size]))


def fit_tiny_model(model_dir: Path, texts: Iterable[str], out_dir: Path, steps: int = 300,
                   block: int = 64, batch_size: int = 16, lr: float = 3e-3, seed: int = 0
                   ) -> Path:
    """A copy of the tiny model at ``model_dir`` trained for ``steps`` next-token steps on
    ``texts`` (random blocks of ``block`` tokens), saved with its tokenizer in ``out_dir``.

    A few hundred steps teach it the texts' common words, enough for its answers to overlap
    the references a little: its scores are small but not all zero.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    ids = torch.tensor([i for text in texts for i in tokenizer(text)["input_ids"]])
    model = AutoModelForCausalLM.from_pretrained(str(model_dir))
    model.train()
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    for _ in range(steps):
        starts = torch.randint(0, len(ids) - block, (batch_size,), generator=generator)
        batch = torch.stack([ids[s:s + block] for s in starts.tolist()])
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()  # type: ignore[no-untyped-call]
    model.save_pretrained(str(out_dir), safe_serialization=True)
    tokenizer.save_pretrained(str(out_dir))
    return out_dir
