"""The two tokenizers of a PISCO checkpoint, encoding as the code that trained it did.

A checkpoint's ``tokenizer.json`` is read with the ``tokenizers`` library itself: newer
transformers releases rebuild some SentencePiece tokenizers on load (a Llama tokenizer's
Metaspace pre-tokenizer then prepends "▁" after every special token), which would change the
ids around ``<MEM>``, ``<AE>`` and ``<s>``. transformers still renders the chat template
and decodes. Without a ``tokenizer.json`` the transformers tokenizer encodes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.compressors.soft.pisco.layout import AE_TOKEN, MEM_TOKEN, DecoderIds
from bench.substrate.errors import InputError

TOKENIZER_FILE = "tokenizer.json"


@dataclass
class PiscoTokenizer:
    """A transformers tokenizer and, where there is one, its saved fast tokenizer."""

    hf: Any
    saved: Any | None
    source: str

    @classmethod
    def load(cls, name_or_path: str, revision: str | None = None) -> PiscoTokenizer:
        """The tokenizer of a local folder or a hub model."""
        from tokenizers import Tokenizer
        from transformers import AutoTokenizer
        from transformers.utils.hub import cached_file

        hf = AutoTokenizer.from_pretrained(name_or_path, revision=revision)
        local = Path(name_or_path) / TOKENIZER_FILE
        file = str(local) if local.is_file() else cached_file(
            name_or_path, TOKENIZER_FILE, revision=revision,
            _raise_exceptions_for_missing_entries=False)
        saved = None
        if file is not None:
            saved = Tokenizer.from_file(str(file))
            saved.no_truncation()
            saved.no_padding()
        return cls(hf, saved, name_or_path)

    def encode(self, text: str, special_tokens: bool) -> list[int]:
        """Ids of ``text``; ``special_tokens``: with the tokenizer's BOS/EOS template."""
        if self.saved is not None:
            ids: list[int] = self.saved.encode(text, add_special_tokens=special_tokens).ids
            return ids
        return list(self.hf(text, add_special_tokens=special_tokens)["input_ids"])

    def token_id(self, token: str) -> int:
        """The id of a token the tokenizer must have."""
        found = self.hf.convert_tokens_to_ids(token)
        if self.saved is not None:
            saved = self.saved.token_to_id(token)
            if saved != found:
                raise ValueError(f"pisco: the tokenizer gives {token} the id {found}, its "
                                 f"{TOKENIZER_FILE} {saved}")
        if not isinstance(found, int) or found == self.hf.unk_token_id:
            raise ValueError(f"pisco: the tokenizer has no {token} token")
        return found

    def add_special_tokens(self, tokens: list[str]) -> None:
        """Add ``tokens`` as special tokens to both tokenizers (ids checked equal)."""
        from tokenizers import AddedToken

        self.hf.add_special_tokens({"additional_special_tokens": tokens})
        if self.saved is not None:
            self.saved.add_special_tokens([AddedToken(t, special=True, normalized=False)
                                           for t in tokens])
        for token in tokens:
            self.token_id(token)

    @property
    def pad_id(self) -> int:
        """The pad id, BOS where the tokenizer has none (the reference's choice)."""
        pad = self.hf.pad_token_id
        pad = self.hf.bos_token_id if pad is None else pad
        if pad is None:
            raise ValueError("pisco: the tokenizer has neither a pad nor a BOS token")
        return int(pad)

    @property
    def bos_text(self) -> str:
        return str(self.hf.bos_token or "")

    @property
    def eos_text(self) -> str:
        return str(self.hf.eos_token)

    def decoder_ids(self) -> DecoderIds:
        """The special ids a decoder tokenizer must have (``<MEM>``, ``<AE>``, EOS)."""
        eos = self.hf.eos_token_id
        if eos is None:
            raise ValueError("pisco: the decoder tokenizer has no EOS token")
        bos = self.hf.bos_token_id
        return DecoderIds(mem=self.token_id(MEM_TOKEN), ae=self.token_id(AE_TOKEN),
                          bos=None if bos is None else int(bos), eos=int(eos), pad=self.pad_id)

    def chat_text(self, messages: list[dict[str, str]]) -> str:
        """The chat template rendered as text (no generation prompt)."""
        if not self.hf.chat_template:
            raise InputError("has no chat template, which PISCO's QA prompt is written in",
                             self.source, hint="use a chat model's tokenizer")
        text: str = self.hf.apply_chat_template(messages, tokenize=False)
        return text

    def decode(self, ids: list[int]) -> str:
        return str(self.hf.decode(ids, skip_special_tokens=True))

    def decode_all(self, ids: list[int]) -> str:
        """The text of ``ids``, special tokens included (as the saved tokenizer writes it)."""
        if self.saved is not None:
            return str(self.saved.decode(ids, skip_special_tokens=False))
        return str(self.hf.decode(ids, skip_special_tokens=False))

    def save(self, folder: Path) -> None:
        """``save_pretrained``, keeping the fast tokenizer as it encodes here."""
        self.hf.save_pretrained(str(folder))
        if self.saved is not None:
            self.saved.save(str(folder / TOKENIZER_FILE))
