"""The target model's tokenizer for served models: Hugging Face, or a tiktoken encoding.

``tokenizer=NAME_OR_PATH`` loads a Hugging Face tokenizer; ``tokenizer=tiktoken:ENCODING``
loads a tiktoken encoding (from ``TIKTOKEN_CACHE_DIR`` or downloaded), and
``tokenizer=tiktoken:/path/ENCODING.tiktoken`` reads it from a local file, which works
offline: the file name says which encoding it is, for its split pattern and special tokens.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.substrate.errors import InputError

if TYPE_CHECKING:
    import tiktoken

logger = logging.getLogger(__name__)

TIKTOKEN_PREFIX = "tiktoken:"
TIKTOKEN_SUFFIX = ".tiktoken"
_CONSTRUCTION_LOCK = threading.Lock()


@dataclass(frozen=True)
class TokenizerSpec:
    """What ``tokenizer=`` named: a Hugging Face tokenizer or a tiktoken encoding."""

    kind: str
    name: str
    file: Path | None = None

    @property
    def is_tiktoken(self) -> bool:
        return self.kind == "tiktoken"

    def describe(self) -> str:
        """The setting as the user wrote it (recorded in results)."""
        if not self.is_tiktoken:
            return self.name
        return f"{TIKTOKEN_PREFIX}{self.file if self.file is not None else self.name}"


def parse_tokenizer_spec(value: str | None, model: str) -> TokenizerSpec:
    """Read ``tokenizer=``: an HF id or folder, ``tiktoken:ENCODING`` or ``tiktoken:FILE``."""
    if not value:
        raise InputError(f"--model_args of {model}: tokenizer= is required, since rates are "
                         "counted in the target model's tokens; give its Hugging Face "
                         "tokenizer (id or folder) or tiktoken:ENCODING for OpenAI models")
    text = str(value)
    if not text.startswith(TIKTOKEN_PREFIX):
        return TokenizerSpec("huggingface", text)
    rest = text[len(TIKTOKEN_PREFIX):]
    if not rest.endswith(TIKTOKEN_SUFFIX):
        return TokenizerSpec("tiktoken", rest)
    path = Path(rest).expanduser()
    if not path.is_file():
        raise InputError(f"tokenizer={text}: no such tiktoken file {path}")
    return TokenizerSpec("tiktoken", path.name[: -len(TIKTOKEN_SUFFIX)], path)


def load_tiktoken_encoding(spec: TokenizerSpec) -> tiktoken.Encoding:
    """The encoding ``spec`` names, from its local file when it has one."""
    import tiktoken
    from tiktoken.registry import list_encoding_names

    known = list_encoding_names()
    if spec.name not in known:
        raise InputError(f"tokenizer={spec.describe()}: {spec.name!r} is not a tiktoken "
                         f"encoding; known encodings: {', '.join(sorted(known))}")
    if spec.file is None:
        try:
            return tiktoken.get_encoding(spec.name)
        except Exception as error:  # network failures surface as many exception types
            raise InputError(
                f"tokenizer={spec.describe()}: the encoding could not be loaded ({error}); "
                f"offline, give its file: tokenizer=tiktoken:/path/{spec.name}{TIKTOKEN_SUFFIX}"
            ) from error
    return _encoding_from_file(spec.name, spec.file)


def _encoding_from_file(name: str, path: Path) -> tiktoken.Encoding:
    """Build encoding ``name`` with the ranks in ``path``, keeping tiktoken's own pattern."""
    import tiktoken
    from tiktoken import registry

    constructor = (registry.ENCODING_CONSTRUCTORS or {})[name]
    module: Any = sys.modules[constructor.__module__]
    if not hasattr(module, "load_tiktoken_bpe"):
        raise InputError(f"tokenizer=tiktoken:{path}: encoding {name!r} is not built from a "
                         f"{TIKTOKEN_SUFFIX} file; use tokenizer=tiktoken:{name}")

    def read_local(_url: str, expected_hash: str | None = None) -> dict[bytes, int]:
        data = path.read_bytes()
        if expected_hash and hashlib.sha256(data).hexdigest() != expected_hash:
            logger.warning("%s differs from the published %s file; counting tokens with it "
                           "as given", path, name)
        return parse_tiktoken_ranks(data, path)

    with _CONSTRUCTION_LOCK:
        original = module.load_tiktoken_bpe
        module.load_tiktoken_bpe = read_local
        try:
            parameters: dict[str, Any] = constructor()
        finally:
            module.load_tiktoken_bpe = original
    return tiktoken.Encoding(**parameters)


def parse_tiktoken_ranks(data: bytes, path: Path) -> dict[bytes, int]:
    """``<base64 token> <rank>`` lines -> {token bytes: rank}."""
    ranks: dict[bytes, int] = {}
    for number, line in enumerate(data.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            token, rank = line.split()
            ranks[base64.b64decode(token, validate=True)] = int(rank)
        except ValueError:
            raise InputError(f"{path}, line {number}: expected '<base64 token> <rank>'") from None
    return ranks


class TiktokenTokenizer:
    """A tiktoken encoding behind the part of the HF tokenizer interface the harness uses."""

    def __init__(self, encoding: tiktoken.Encoding, source: str) -> None:
        self.encoding = encoding
        self.name_or_path = source

    def __call__(self, text: str | Sequence[str], add_special_tokens: bool = False,
                 return_offsets_mapping: bool = False, **_: Any) -> dict[str, Any]:
        if isinstance(text, str):
            return self._encode(text, return_offsets_mapping)
        rows = [self._encode(one, return_offsets_mapping) for one in text]
        return {key: [row[key] for row in rows] for key in rows[0]} if rows else \
            {"input_ids": []}

    def _encode(self, text: str, offsets: bool) -> dict[str, Any]:
        ids = self.encoding.encode_ordinary(text)
        encoded: dict[str, Any] = {"input_ids": ids}
        if offsets:
            _, starts = self.encoding.decode_with_offsets(ids)
            ends = [*starts[1:], len(text)]
            encoded["offset_mapping"] = list(zip(starts, ends, strict=True))
        return encoded

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False, **_: Any) -> str:
        return str(self.encoding.decode(list(ids)))

    def get_vocab(self) -> dict[str, int]:
        """Token (bytes read as latin-1, so that every token is a distinct string) -> id."""
        vocab: dict[str, int] = {}
        for token_id in range(self.encoding.n_vocab):
            try:
                vocab[self.encoding.decode_single_token_bytes(token_id).decode("latin-1")] = \
                    token_id
            except KeyError:
                continue
        return vocab

    def __len__(self) -> int:
        return int(self.encoding.n_vocab)


def load_counting_tokenizer(spec: TokenizerSpec) -> Any:
    """The tokenizer that counts target tokens: HF's, or a tiktoken encoding wrapped."""
    if spec.is_tiktoken:
        return TiktokenTokenizer(load_tiktoken_encoding(spec), spec.describe())
    from transformers import AutoTokenizer

    from bench.hub import load_from_hub

    return load_from_hub(
        lambda: AutoTokenizer.from_pretrained(spec.name, trust_remote_code=False),
        spec.name, "tokenizer", "tokenizer= in --model_args",
    )
