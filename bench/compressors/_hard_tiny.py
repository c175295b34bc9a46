"""A tiny seeded token classifier in the LLMLingua-2 format, built offline for tests and demos.

LLMLingua-2 checkpoints are BERT (WordPiece, ``[CLS]``/``[SEP]``) or XLM-RoBERTa token
classifiers with two labels (drop, keep). This builds the BERT flavour: a WordPiece tokenizer
trained on the given texts and a randomly initialised (seeded) ``BertForTokenClassification``
saved with safetensors. Its scores are arbitrary but deterministic.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

BERT_SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")

# llmlingua 0.2.2 always frames chunks of up to 512 tokens.
LLMLINGUA2_WINDOW = 512


def train_wordpiece_tokenizer(texts: Iterable[str], out_dir: Path, vocab_size: int = 1024) -> Path:
    """Train a cased BERT WordPiece tokenizer (``##`` continuations) and save it."""
    from tokenizers import (
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
        trainers,
    )
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=False, strip_accents=False)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece(prefix="##")
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size, special_tokens=list(BERT_SPECIAL_TOKENS), show_progress=False
    )
    tokenizer.train_from_iterator(list(texts), trainer=trainer)
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    fast = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=tokenizer,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(str(out_dir))
    config_path = out_dir / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True), encoding="utf-8")
    return out_dir


def build_tiny_token_classifier(
    texts: Iterable[str],
    out_dir: Path,
    seed: int = 0,
    hidden_size: int = 32,
    num_layers: int = 1,
    vocab_size: int = 1024,
) -> Path:
    """Build, seed and save a tiny two-label ``BertForTokenClassification`` with its tokenizer."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForTokenClassification

    train_wordpiece_tokenizer(texts, out_dir, vocab_size=vocab_size)
    tokenizer = AutoTokenizer.from_pretrained(str(out_dir))
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=2,
        intermediate_size=hidden_size * 2,
        max_position_embeddings=LLMLINGUA2_WINDOW,
        pad_token_id=tokenizer.pad_token_id,
        id2label={0: "drop", 1: "keep"},
        label2id={"drop": 0, "keep": 1},
    )
    torch.manual_seed(seed)
    model = BertForTokenClassification(config)
    model.eval()  # type: ignore[no-untyped-call]
    model.save_pretrained(str(out_dir), safe_serialization=True)
    return out_dir
