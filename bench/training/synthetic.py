"""Texts sampled from a model itself (seeded): in-distribution training data for tiny models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch


def sample_texts(model: Any, tokenizer: Any, count: int, max_new_tokens: int, seed: int = 0,
                 temperature: float = 1.0, batch_size: int = 64) -> list[str]:
    """``count`` texts sampled from BOS with a seeded generator (distinct, stripped)."""
    bos = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    torch.manual_seed(seed)
    texts: list[str] = []
    seen: set[str] = set()
    while len(texts) < count:
        start = torch.full((batch_size, 1), bos, dtype=torch.long, device=model.device)
        with torch.no_grad():
            out = model.generate(start, attention_mask=torch.ones_like(start), do_sample=True,
                                 temperature=temperature, top_k=0,
                                 max_new_tokens=max_new_tokens,
                                 pad_token_id=tokenizer.eos_token_id)
        for row in out[:, 1:]:
            text = tokenizer.decode(row, skip_special_tokens=True).strip()
            if text and text not in seen and len(texts) < count:
                seen.add(text)
                texts.append(text)
    return texts


def write_text_corpus(texts: list[str], folder: Path, dev: int) -> Path:
    """A pretraining folder (train.parquet / dev.parquet with a ``text`` column)."""
    import pandas as pd

    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"text": texts[dev:]}).to_parquet(folder / "train.parquet", index=False)
    pd.DataFrame({"text": texts[:dev]}).to_parquet(folder / "dev.parquet", index=False)
    return folder


def write_opening_qa(corpus: Path, folder: Path) -> Path:
    """A fine-tuning folder from a :func:`write_text_corpus` folder: each text is the context
    of "How does the story begin?", answered by its first three words."""
    import pandas as pd

    folder.mkdir(parents=True, exist_ok=True)
    for name in ("train.parquet", "dev.parquet"):
        texts = pd.read_parquet(corpus / name)["text"]
        pd.DataFrame({"context": texts, "question": "How does the story begin?",
                      "answers": [[" ".join(text.split()[:3])] for text in texts]}
                     ).to_parquet(folder / name, index=False)
    return folder
