"""Checks that a target model and its tokenizer are a gist model the compressor can run."""

from __future__ import annotations

from typing import Any

from transformers import PreTrainedTokenizerBase

from bench.compressors.soft._checkpoint_files import check_values
from bench.compressors.soft._prompts import generation_eos_ids
from bench.compressors.soft._torch import input_embedding
from bench.substrate.errors import InputError

SUPPORTED_MODEL_TYPE = "llama"


class GistModelError(InputError):
    """The target model or tokenizer lacks what gist compression needs."""


def gist_token_id(tokenizer: PreTrainedTokenizerBase, gist_token: str, where: str) -> int:
    """The id of the added token ``gist_token`` in ``tokenizer``."""
    added: dict[str, int] = tokenizer.get_added_vocab()
    if gist_token not in added:
        raise GistModelError(
            f"gist: the tokenizer of {where} has no added token {gist_token!r} "
            "(added_tokens.json / tokenizer.json); load a gist-fine-tuned checkpoint, or name "
            "its gist token with gist_token=...")
    return int(added[gist_token])


def bos_token_id(tokenizer: PreTrainedTokenizerBase, where: str) -> int:
    """The BOS id that starts the compression call."""
    bos = tokenizer.bos_token_id
    if bos is None:
        raise GistModelError(f"gist: the tokenizer of {where} defines no bos_token; the gist "
                             "compression call starts with BOS (tokenizer_config.json)")
    return int(bos)


def eos_token_ids(tokenizer: PreTrainedTokenizerBase, model: Any) -> list[int]:
    """Ids that end generation (see :func:`._prompts.generation_eos_ids`)."""
    try:
        return generation_eos_ids(tokenizer, model)
    except ValueError as error:
        raise GistModelError(f"gist: {error}") from None


def check_model(model: Any, gist_id: int, num_gist_tokens: int, where: str) -> None:
    """Refuse models whose config or embeddings do not fit a gist LLaMA."""
    config = model.config
    model_type = getattr(config, "model_type", None)
    if model_type != SUPPORTED_MODEL_TYPE:
        raise GistModelError(
            f"gist: {where} has config.json model_type {model_type!r}; the gist compressor "
            f"follows the LLaMA path of jayelm/gisting (model_type {SUPPORTED_MODEL_TYPE!r})")
    rows = int(input_embedding(model).weight.shape[0])
    if gist_id >= rows:
        raise GistModelError(
            f"gist: {where} has {rows} embedding rows but the gist token id is {gist_id}; the "
            "model was not fine-tuned with the gist token (config.json vocab_size)")
    gist_row = input_embedding(model).weight[gist_id]
    check_values(where, {f"input embedding of the gist token (id {gist_id})": gist_row})
    if num_gist_tokens < 1:
        raise GistModelError(f"gist: num_gist_tokens must be >= 1, got {num_gist_tokens}")
    trained = getattr(config, "num_gist_tokens", None)
    if trained is not None and int(trained) != num_gist_tokens:
        raise GistModelError(
            f"gist: {where} was trained with num_gist_tokens={trained} (config.json) but "
            f"num_gist_tokens={num_gist_tokens} was asked for")
