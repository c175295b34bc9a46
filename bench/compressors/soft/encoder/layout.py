"""Where contexts, prompts and training targets go in the encoder and decoder inputs.

Two layouts:

* ``reference`` (default) - the 500xCompressor code's: the encoder reads the context tokens
  without BOS, cut to ``max_context_tokens`` (training: to ``context_length``) and right-padded
  with EOS to ``context_length``, with no attention mask; the k memory slots follow at positions
  ``context_length .. context_length+k-1``. Pretraining targets are the padded ids + EOS (every
  EOS pad is a target unless ``loss_on_padding`` is off); fine-tuning decodes the question ids +
  answer ids padded with EOS to ``max_qa_len`` and scores the answer + EOS.
* ``compressbench`` - BOS + the context cut to ``max_context_tokens``, left-padded with an
  attention mask; the targets are the context (or answer) tokens + EOS. ``decoder_positions``
  (500x) applies to this layout only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from bench.substrate.errors import InputError

LAYOUTS = ("reference", "compressbench")
DECODER_POSITIONS = ("continue", "restart")
IGNORE = -100


@dataclass(frozen=True)
class Layout:
    """The input layout of one soft model (recorded in checkpoints and settings)."""

    name: str = "reference"
    context_length: int = 500
    max_context_tokens: int = 480
    decoder_positions: str | None = None
    max_qa_len: int = 46
    loss_on_padding: bool = True

    def __post_init__(self) -> None:
        if self.name not in LAYOUTS:
            raise InputError(f"layout must be one of {LAYOUTS}, got {self.name!r}")
        for field in ("context_length", "max_context_tokens", "max_qa_len"):
            if getattr(self, field) < 1:
                raise InputError(f"{field} must be >= 1, got {getattr(self, field)}")
        if self.decoder_positions is not None and self.name != "compressbench":
            raise InputError("decoder_positions applies to layout=compressbench only")
        if self.name == "compressbench" and self.decoder_positions not in DECODER_POSITIONS:
            raise InputError(f"decoder_positions must be one of {DECODER_POSITIONS}, "
                             f"got {self.decoder_positions!r}")
        if self.name == "reference" and self.max_context_tokens > self.context_length:
            raise InputError(f"max_context_tokens ({self.max_context_tokens}) must not exceed "
                             f"context_length ({self.context_length}); lower max_context_tokens "
                             "or raise context_length")

    @property
    def is_reference(self) -> bool:
        return self.name == "reference"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Layout:
        return cls(name=str(values["name"]), context_length=int(values["context_length"]),
                   max_context_tokens=int(values["max_context_tokens"]),
                   decoder_positions=values.get("decoder_positions"),
                   max_qa_len=int(values["max_qa_len"]),
                   loss_on_padding=bool(values["loss_on_padding"]))


def padded_context(ids: Sequence[int], truncation: int, length: int, eos: int) -> list[int]:
    """``ids`` cut to ``truncation`` tokens and right-padded with EOS to ``length``."""
    kept = list(ids[:min(truncation, length)])
    return kept + [eos] * (length - len(kept))


def regeneration_labels(padded: Sequence[int], real_tokens: int, eos: int,
                        on_padding: bool) -> list[int]:
    """Targets of the padded context: every id + EOS, or the real tokens + one EOS."""
    if on_padding:
        return [*padded, eos]
    kept = min(real_tokens, len(padded))
    return [*padded[:kept], eos] + [IGNORE] * (len(padded) - kept)


def qa_rows(question_ids: Sequence[int], answer_ids: Sequence[int], max_qa_len: int,
            eos: int) -> tuple[list[int], list[int]]:
    """Decoder ids (question + answer, EOS-padded to ``max_qa_len``) and their labels.

    The label of position ``len(question)-1`` is the first answer token; the answer is followed
    by EOS. Pairs longer than ``max_qa_len`` keep their length (no padding).
    """
    if not question_ids:
        raise InputError("a QA training row needs at least one question token")
    ids = [*question_ids, *answer_ids]
    ids += [eos] * (max_qa_len - len(ids))
    targets = [*answer_ids, eos]
    start = len(question_ids) - 1
    labels = [IGNORE] * len(ids)
    labels[start:start + len(targets)] = targets
    return ids, labels
