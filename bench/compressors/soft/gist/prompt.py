"""Prompt template and token layout of gist models (jayelm/gisting, LLaMA path).

Full prompt: ``Instruction: {context}\\n<GIST>..\\nInput: {question}\\nOutput:``, or without the
``\\nInput: {question}`` part when there is no question. The compression call reads
``<s>Instruction: {context}\\n<GIST>..``; the decoder reads what follows the last gist token.

The published models were trained with the transformers 4.28 slow LLaMA tokenizer, which
splits the text at added tokens, strips the whitespace touching them and encodes every piece
on its own (so a piece after ``<GIST>`` starts with SentencePiece's ``▁`` prefix and the
newlines next to ``<GIST>`` vanish). Newer tokenizers keep those newlines, so the same layout
is rebuilt here by splitting at the gist token and encoding each stripped piece separately.
"""

from __future__ import annotations

from dataclasses import dataclass

from transformers import PreTrainedTokenizerBase

INSTRUCTION_PREFIX = "Instruction: "
INPUT_PREFIX = "\nInput: "
OUTPUT_CUE = "\nOutput:"


def compression_text(context: str, gist_token: str, num_gist_tokens: int) -> str:
    """The text of the compression call (the context as the instruction, then the gists)."""
    return f"{INSTRUCTION_PREFIX}{context}\n{gist_token * num_gist_tokens}"


def after_gist_text(question: str | None) -> str:
    """The prompt text after the gist tokens: with an input when ``question`` is non-empty."""
    if question:
        return f"{INPUT_PREFIX}{question}{OUTPUT_CUE}"
    return OUTPUT_CUE


def full_prompt_text(context: str, question: str | None, gist_token: str,
                     num_gist_tokens: int) -> str:
    """The whole prompt as the model saw it in training."""
    return compression_text(context, gist_token, num_gist_tokens) + after_gist_text(question)


@dataclass(frozen=True)
class GistTokenizer:
    """Encodes gist prompts into the id layout of the reference tokenizer."""

    tokenizer: PreTrainedTokenizerBase
    gist_token: str
    gist_id: int
    bos_id: int

    def encode_pieces(self, text: str) -> list[int]:
        """Ids of ``text`` without BOS: pieces between gist tokens stripped where they touch
        a gist token and encoded one by one, gist tokens as ``gist_id``."""
        pieces = text.split(self.gist_token)
        ids: list[int] = []
        for index, piece in enumerate(pieces):
            if index > 0:
                ids.append(self.gist_id)
                piece = piece.lstrip()
            if index < len(pieces) - 1:
                piece = piece.rstrip()
            if piece:
                ids.extend(self.tokenizer(piece, add_special_tokens=False)["input_ids"])
        return ids

    def encode(self, text: str) -> list[int]:
        """Ids of ``text`` as the reference ``tokenizer.encode`` gives them (BOS first)."""
        return [self.bos_id, *self.encode_pieces(text)]

    def instruction_ids(self, context: str, num_gist_tokens: int) -> list[int]:
        """Ids of the compression call; they end with the gist tokens."""
        return self.encode(compression_text(context, self.gist_token, num_gist_tokens))

    def input_ids(self, question: str | None) -> list[int]:
        """Ids the decoder reads after the gist tokens (no BOS).

        As the reference does: encode one gist token plus the rest of the prompt, then drop
        everything up to and including the gist token.
        """
        ids = self.encode(self.gist_token + after_gist_text(question))
        return ids[ids.index(self.gist_id) + 1:]
