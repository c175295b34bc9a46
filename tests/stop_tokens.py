"""A model whose answers end as a chat model's do: the tokenizer's EOS is not ``</s>`` and
the generation config lists several EOS ids."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

END_OF_TURN = "<|im_end|>"
END_OF_TEXT = "<|endoftext|>"


def with_chat_eos(source: Path, out: Path, extra_tokens: Sequence[str] = ()) -> Path:
    """A copy of the model in ``source`` whose tokenizer's EOS is ``<|im_end|>`` and whose
    ``generation_config.json`` ends an answer at ``<|im_end|>`` or ``<|endoftext|>`` (both
    added special tokens; ``extra_tokens`` are added as well). The new tokens' output rows are
    zero, so that an answer reaches them only where a test forces one."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(source))
    model: Any = AutoModelForCausalLM.from_pretrained(str(source))
    tokenizer.add_special_tokens(
        {"additional_special_tokens": [END_OF_TURN, END_OF_TEXT, *extra_tokens]})
    tokenizer.eos_token = END_OF_TURN
    rows = model.get_input_embeddings().weight.shape[0]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    output = model.get_output_embeddings()
    if output.weight is not model.get_input_embeddings().weight:
        with torch.no_grad():  # the new tokens come only where a test forces them
            output.weight[rows:] = 0.0
    ends = [tokenizer.convert_tokens_to_ids(token) for token in (END_OF_TURN, END_OF_TEXT)]
    model.config.eos_token_id = ends[0]
    model.generation_config.eos_token_id = ends
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    return out
