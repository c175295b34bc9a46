"""Gist-token training (Mu et al. 2023, the LLaMA path of jayelm/gisting).

Each example becomes ``<s>Instruction: {context}\\n<GIST>..\\nInput: {question}\\nOutput:``
followed by the answer and ``</s>`` (regeneration: no input, the answer is the context). The
causal mask is narrowed so that tokens after the last gist token cannot see the tokens before
the first one: what follows reads the context only through the gist tokens' activations. The
loss covers the answer tokens and ``</s>`` only, as the reference collator labels them. The
LM itself is trained (fully, or with LoRA merged back into it when saved), and the checkpoint
is a plain ``save_pretrained`` folder with the ``<GIST>`` added token: the layout of a
published gist model after its weight diff is recovered, which the ``gist`` compressor loads.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bench.compressors.soft.gist.prompt import GistTokenizer
from bench.training.config import TrainConfig
from bench.training.example import Example
from bench.training.lm_methods import (
    LM_SETTINGS,
    LmBuilt,
    LmMethod,
    lm_method_parts,
    load_lm,
    lora_model,
)
from bench.training.method import IGNORE, TokenBatch, pad_rows
from bench.training.registry import TrainingMethod, register_training_method
from bench.training.strategy import writable

GIST_TOKEN = "<GIST>"


def add_gist_token(model: Any, tokenizer: Any, gist_token: str = GIST_TOKEN) -> int:
    """Add ``gist_token`` to ``tokenizer`` and a row for it to the model's input and output
    embeddings, set to the mean of the existing rows (as the reference initialises it)."""
    added: dict[str, int] = tokenizer.get_added_vocab()
    if gist_token in added:
        return int(added[gist_token])
    tokenizer.add_special_tokens({"additional_special_tokens": [gist_token]})
    gist_id = int(tokenizer.convert_tokens_to_ids(gist_token))
    old_rows = int(model.get_input_embeddings().num_embeddings)  # ZeRO-3: weight is empty
    model.resize_token_embeddings(max(gist_id + 1, old_rows), mean_resizing=False)
    layers = [layer for layer in (model.get_input_embeddings(), model.get_output_embeddings())
              if layer is not None]
    with torch.no_grad(), writable(*(layer.weight for layer in layers)):
        for layer in layers:
            layer.weight[gist_id] = layer.weight[:old_rows].mean(dim=0)
    return gist_id


def gist_attention(input_ids: torch.Tensor, gist_id: int, valid: torch.Tensor) -> torch.Tensor:
    """Boolean ``[batch, 1, L, L]`` mask (True: may attend): causal, keys that are padding
    hidden, and tokens after the last gist token blind to tokens before the first one.
    Every token may attend to itself, so padded rows stay finite."""
    length = input_ids.shape[1]
    is_gist = input_ids == gist_id
    after_first_gist = is_gist.long().cumsum(-1) >= 1
    upto_last_gist = is_gist.long().flip(-1).cumsum(-1).flip(-1) >= 1
    has_gist = is_gist.any(-1, keepdim=True)
    query_after_gists = (~upto_last_gist & has_gist)[:, :, None]
    key_before_gists = (~after_first_gist & has_gist)[:, None, :]
    causal = torch.ones(length, length, dtype=torch.bool, device=input_ids.device).tril()
    allowed = causal[None] & valid[:, None, :].bool() & ~(query_after_gists & key_before_gists)
    allowed |= torch.eye(length, dtype=torch.bool, device=input_ids.device)[None]
    return allowed[:, None]


def additive_mask(allowed: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """0 where attention is allowed, the dtype's minimum elsewhere."""
    blocked = torch.full_like(allowed, torch.finfo(dtype).min, dtype=dtype)
    return blocked.masked_fill(allowed, 0.0)


@dataclass(frozen=True)
class GistCollator:
    """Tokenises examples into right-padded gist batches (``input_ids``, ``labels``,
    ``valid``); contexts are cut to ``max_context_tokens`` ids and answers to
    ``max_answer_tokens``."""

    tokens: GistTokenizer
    num_gist_tokens: int
    max_context_tokens: int
    max_answer_tokens: int

    def example_ids(self, example: Example) -> tuple[list[int], list[int]]:
        """Prompt ids (ending with the output cue) and answer ids (ending with EOS)."""
        tokenizer = self.tokens.tokenizer
        context_ids = tokenizer(example.context, add_special_tokens=False)["input_ids"]
        context = str(tokenizer.decode(context_ids[: self.max_context_tokens]))
        question = example.question if example.kind == "qa" else None
        prompt = [*self.tokens.instruction_ids(context, self.num_gist_tokens),
                  *self.tokens.input_ids(question)]
        target = context if example.kind == "regeneration" else example.target
        answer = tokenizer(target, add_special_tokens=False)["input_ids"]
        limit = self.max_context_tokens if example.kind == "regeneration" else \
            self.max_answer_tokens
        return prompt, [*answer[:limit], int(tokenizer.eos_token_id)]

    def __call__(self, examples: Sequence[Example]) -> TokenBatch:
        rows = [self.example_ids(example) for example in examples]
        return pad_rows([(prompt + answer, [IGNORE] * len(prompt) + answer)
                         for prompt, answer in rows], int(self.tokens.tokenizer.eos_token_id))


class GistTrainingModel(nn.Module):
    """The LM under training; ``forward(batch)`` gives the summed token loss of the batch's
    answer tokens."""

    def __init__(self, model: Any, gist_id: int) -> None:
        super().__init__()
        self.model = model
        self.gist_id = gist_id

    def logits(self, input_ids: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        dtype = self.model.get_input_embeddings().weight.dtype
        mask = additive_mask(gist_attention(input_ids, self.gist_id, valid), dtype)
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)[None]
        out = self.model(input_ids=input_ids, attention_mask=mask, position_ids=positions,
                         use_cache=False)
        logits: torch.Tensor = out.logits
        return logits

    def forward(self, batch: TokenBatch) -> torch.Tensor:
        logits = self.logits(batch.input_ids, batch.valid)[:, :-1].float()
        return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                           batch.labels[:, 1:].reshape(-1),
                                           ignore_index=IGNORE, reduction="sum")


def save_gist(model: Any, tokenizer: Any, num_gist_tokens: int, out: Path) -> Path:
    """Write the published gist layout: the whole LM (LoRA merged) and the tokenizer with its
    ``<GIST>`` token; ``config.json`` also records ``num_gist_tokens``."""
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    model.config.num_gist_tokens = num_gist_tokens
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out


def build_gist(config: TrainConfig, cuda: bool) -> LmBuilt:
    """The LM with its gist token (and LoRA), the training module and the collate function."""
    tokenizer, model = load_lm(config, cuda, config.init_from)
    gist_id = add_gist_token(model, tokenizer)
    if config.lora:  # the new gist row must be learnt: embeddings are trained fully
        model = lora_model(model, config, ("embed_tokens", "lm_head"))
    tokens = GistTokenizer(tokenizer, GIST_TOKEN, gist_id, int(tokenizer.bos_token_id))
    collate = GistCollator(tokens, config.num_mem, config.max_context_tokens,
                           config.max_answer_tokens)
    return LmBuilt(GistTrainingModel(model, gist_id), tokenizer, model, collate)


def _save(built: LmBuilt, config: TrainConfig, out: Path) -> None:
    save_gist(built.model, built.tokenizer, config.num_mem, out)


GIST = LmMethod(build=build_gist, save=_save)

register_training_method(TrainingMethod(
    name="gist",
    summary="fine-tunes the LM itself; --num-mem: gist tokens; writes the published "
            "checkpoint layout",
    parts=partial(lm_method_parts, GIST), settings=LM_SETTINGS, per_layer_fsdp=True))
