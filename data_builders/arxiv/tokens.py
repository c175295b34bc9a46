"""Token counts in the target tokenizer and cuts to exactly L tokens (round-trip checked)."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

_BATCH = 1024


class TargetTokenizer:
    """A Hugging Face tokenizer used for counting (no special tokens, never truncating).

    Fast tokenizers are driven through a copy of their Rust backend with truncation and
    padding switched off (some saved ``tokenizer.json`` files carry a truncation setting),
    which gives the wrapper's ids several times faster.
    """

    def __init__(self, tokenizer: Any, name_or_path: str) -> None:
        self.tokenizer = tokenizer
        self.name_or_path = name_or_path
        self.fast = bool(getattr(tokenizer, "is_fast", False))
        self._backend: Any = None
        if self.fast:
            self._backend = copy.deepcopy(tokenizer.backend_tokenizer)
            self._backend.no_truncation()
            self._backend.no_padding()

    @classmethod
    def load(cls, name_or_path: str) -> TargetTokenizer:
        """Load any tokenizer by hub name or local path (remote code stays off)."""
        from transformers import AutoTokenizer

        from bench.hub import load_from_hub

        tokenizer = load_from_hub(
            lambda: AutoTokenizer.from_pretrained(name_or_path, trust_remote_code=False),
            name_or_path, "tokenizer", "--tokenizer",
        )
        return cls(tokenizer, name_or_path)

    def count(self, texts: Sequence[str]) -> list[int]:
        """Number of tokens of each text."""
        counts: list[int] = []
        for start in range(0, len(texts), _BATCH):
            batch = list(texts[start : start + _BATCH])
            if self._backend is not None:
                encoded = self._backend.encode_batch(batch, add_special_tokens=False)
                counts.extend(len(item.ids) for item in encoded)
            elif batch:
                ids = self.tokenizer(batch, add_special_tokens=False, truncation=False)
                counts.extend(len(item) for item in ids["input_ids"])
        return counts

    def cut(self, text: str, length: int) -> str | None:
        """A prefix of ``text`` that re-tokenises to exactly ``length`` tokens, or None.

        Tries the original characters up to the end of token ``length`` (offset mapping of
        fast tokenizers), then the decoded first ``length`` tokens, each stripped and as is.
        """
        candidates: list[str] = []
        if self._backend is not None:
            encoding = self._backend.encode(text, add_special_tokens=False)
            ids = list(encoding.ids)
            if len(ids) >= length:
                candidates.append(text[: encoding.offsets[length - 1][1]])
        else:
            ids = self.tokenizer(text, add_special_tokens=False, truncation=False)["input_ids"]
        if len(ids) < length:
            return None
        candidates.append(self.tokenizer.decode(ids[:length], skip_special_tokens=True))
        for candidate in candidates:
            for variant in (candidate.strip(), candidate):
                if variant and self.count([variant])[0] == length:
                    return variant
        return None

    def identity(self) -> dict[str, Any]:
        """What the card and manifest record about the tokenizer."""
        return {
            "name_or_path": self.name_or_path,
            "class": type(self.tokenizer).__name__,
            "vocab_size": len(self.tokenizer),
        }
