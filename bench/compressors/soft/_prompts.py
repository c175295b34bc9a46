"""Decoder prompt formats shared by training and inference (they must agree exactly).

* QA (500x and ICAE): ``"Question: {question} Answer: "`` after the memory; the model then
  writes the answer and EOS.
* Regeneration: 500x feeds the BOS token after the memory (EOS where the tokenizer has no BOS);
  ICAE feeds its trainable trigger embedding. The model then writes the text and EOS.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from transformers import PreTrainedTokenizerBase

from bench.generation import eos_token_ids
from bench.substrate.errors import InputError

QA_TEMPLATE = "Question: {question} Answer: "
LLAMA3_END_OF_TEXT = "<|end_of_text|>"


@dataclass(frozen=True)
class SpecialIds:
    """Token ids the soft compressors use, read from the tokenizer (recorded in checkpoints)."""

    bos: int | None
    eos: int
    pad: int

    @classmethod
    def from_tokenizer(cls, tokenizer: PreTrainedTokenizerBase) -> SpecialIds:
        eos = tokenizer.eos_token_id
        if eos is None:
            raise InputError("the tokenizer defines no EOS token; soft compressors need one")
        pad = tokenizer.pad_token_id
        return cls(bos=tokenizer.bos_token_id, eos=int(eos), pad=int(eos if pad is None else pad))

    @property
    def trigger(self) -> int:
        """The regeneration trigger token of 500x: BOS, or EOS without a BOS token."""
        return self.eos if self.bos is None else self.bos

    def as_dict(self) -> dict[str, int | None]:
        return {"bos": self.bos, "eos": self.eos, "pad": self.pad}


def text_ids(tokenizer: PreTrainedTokenizerBase, text: str) -> list[int]:
    """Token ids of ``text`` without special tokens."""
    ids: list[int] = tokenizer(text, add_special_tokens=False)["input_ids"]
    return ids


def qa_prompt_ids(tokenizer: PreTrainedTokenizerBase, question: str) -> list[int]:
    """The QA cue that follows the memory, with ``question`` exactly as given."""
    return text_ids(tokenizer, QA_TEMPLATE.format(question=question))


def generation_eos_ids(tokenizer: PreTrainedTokenizerBase, model: Any) -> list[int]:
    """Ids that end generation: the tokenizer's EOS plus those ``generation_config`` lists
    (:func:`bench.generation.eos_token_ids`); an error when there is none."""
    ids = eos_token_ids(tokenizer, model)
    if not ids:
        raise InputError("neither the tokenizer nor generation_config.json defines an EOS token")
    return ids


def repo_stop_ids(tokenizer: PreTrainedTokenizerBase, model: Any) -> list[int]:
    """Ids that end 500x and ICAE-baseline generation, as in the 500xCompressor code: the
    model's EOS ids (:func:`generation_eos_ids`) and Llama-3's ``<|end_of_text|>`` where the
    tokenizer has it (that code always stops there, whatever the tokenizer's EOS)."""
    ids = set(generation_eos_ids(tokenizer, model))
    end_of_text = tokenizer.get_vocab().get(LLAMA3_END_OF_TEXT)
    if end_of_text is not None:
        ids.add(int(end_of_text))
    return sorted(ids)
