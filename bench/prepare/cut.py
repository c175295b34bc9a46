"""Cutting texts to a number of target-model tokens, keeping a faithful prefix."""

from __future__ import annotations

from typing import Any

from transformers import AutoTokenizer, PreTrainedTokenizerBase

from bench.substrate.errors import InputError

__all__ = ["count_tokens", "cut_to_tokens", "load_tokenizer", "tokenizer_name"]


def load_tokenizer(name_or_path: str | PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    """A fast tokenizer (offsets are needed) from a hub name or local folder; remote code off.

    A hub id that cannot be loaded (offline, not found) is one line naming ``--tokenizer``.
    """
    if isinstance(name_or_path, PreTrainedTokenizerBase):
        tokenizer = name_or_path
    else:
        from bench.hub import load_from_hub

        name = str(name_or_path)
        tokenizer = load_from_hub(
            lambda: AutoTokenizer.from_pretrained(name, trust_remote_code=False),
            name, "tokenizer", "--tokenizer",
        )
    if not tokenizer.is_fast:
        raise InputError(
            f"tokenizer {tokenizer_name(tokenizer)!r} is not a fast tokenizer: character "
            "offsets are needed to cut texts faithfully"
        )
    return tokenizer


def tokenizer_name(tokenizer: PreTrainedTokenizerBase) -> str:
    """The name or path a tokenizer was loaded from."""
    return str(getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__)


def _encode(tokenizer: PreTrainedTokenizerBase, text: str) -> Any:
    return tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)


def count_tokens(tokenizer: PreTrainedTokenizerBase, text: str) -> int:
    """Tokens of ``text`` without special tokens (no BOS/EOS)."""
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def cut_to_tokens(
    tokenizer: PreTrainedTokenizerBase, text: str, max_tokens: int, exact: bool = False
) -> tuple[str, int] | None:
    """The longest prefix of ``text`` (ending at a token end) that has at most ``max_tokens``.

    Returns ``(prefix, n_tokens)`` where ``n_tokens`` is the token count of the prefix
    re-encoded on its own (no special tokens). Text within the limit is returned unchanged.
    A prefix is ``text[:end]`` with ``end`` a token's end offset, so it is byte-faithful;
    re-encoding a cut can merge or split the last pieces, so the cut point is moved back
    until the re-encoded count fits. With ``exact=True`` the prefix must have exactly
    ``max_tokens`` tokens; ``None`` when the text is shorter or no such prefix exists.
    """
    if max_tokens < 0:
        raise ValueError(f"max_tokens must be >= 0, got {max_tokens}")
    offsets = _encode(tokenizer, text)["offset_mapping"]
    if len(offsets) <= max_tokens:
        if exact and len(offsets) != max_tokens:
            return None
        return text, len(offsets)
    keep = max_tokens
    while keep > 0:
        prefix = text[: offsets[keep - 1][1]]
        n_tokens = count_tokens(tokenizer, prefix)
        if n_tokens <= max_tokens:
            if exact and n_tokens != max_tokens:
                return _exact_search(tokenizer, text, offsets, keep, max_tokens)
            return prefix, n_tokens
        keep -= 1
    return None if exact else ("", 0)


def _exact_search(
    tokenizer: PreTrainedTokenizerBase,
    text: str,
    offsets: list[tuple[int, int]],
    keep: int,
    target: int,
) -> tuple[str, int] | None:
    # Re-encoding merged some pieces: try a few longer cut points for exactly ``target``.
    for more in range(keep + 1, min(len(offsets), keep + 8) + 1):
        prefix = text[: offsets[more - 1][1]]
        n_tokens = count_tokens(tokenizer, prefix)
        if n_tokens == target:
            return prefix, n_tokens
        if n_tokens > target:
            return None
    return None
