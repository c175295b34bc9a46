"""What the training loop needs from a method: the one plug-in point of :mod:`.loop`.

A method (500x, ICAE, gist, AutoCompressor) hands the loop a :class:`MethodParts`: the module
that accelerate prepares, whose ``forward`` computes a batch's summed token loss with every
trained tensor used inside it (so FSDP and ZeRO-3 gather them); the collate function that
tokenises examples into batches; and the writer of its evaluation checkpoint from the trained
tensors gathered by name. Batches have ``target_tokens`` (labels that are targets of the
loss), ``tokens`` (input positions, for throughput) and ``to(device)``.

A batch may be :class:`Substeps`: pieces that each get their own forward and backward pass,
the module handing a detached ``carry`` (AutoCompressor's summary vectors) from one piece to
the next: ``module(piece, carry) -> (summed loss, carry)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from bench.training.example import Example

if TYPE_CHECKING:
    from accelerate import Accelerator


IGNORE = -100


@dataclass(frozen=True)
class TokenBatch:
    """Right-padded token rows: ``input_ids``, ``labels`` (-100 where no target; position t
    is predicted from the positions before it) and ``valid`` (1 on real tokens);
    ``lengths``: the segment lengths of an AutoCompressor piece."""

    input_ids: torch.Tensor
    labels: torch.Tensor
    valid: torch.Tensor
    lengths: tuple[int, ...] = ()

    @property
    def target_tokens(self) -> int:
        return int((self.labels[:, 1:] != IGNORE).sum())

    @property
    def tokens(self) -> int:
        return int(self.valid.sum())

    def to(self, device: torch.device | str, non_blocking: bool = False) -> TokenBatch:
        return TokenBatch(self.input_ids.to(device, non_blocking=non_blocking),
                          self.labels.to(device, non_blocking=non_blocking),
                          self.valid.to(device, non_blocking=non_blocking), self.lengths)


def pad_rows(rows: Sequence[tuple[list[int], list[int]]], pad_id: int) -> TokenBatch:
    """Token rows ``(ids, labels)`` right-padded with ``pad_id`` into one batch."""
    width = max(len(ids) for ids, _ in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    valid = torch.zeros((len(rows), width), dtype=torch.long)
    for row, (ids, row_labels) in enumerate(rows):
        input_ids[row, :len(ids)] = torch.tensor(ids)
        labels[row, :len(ids)] = torch.tensor(row_labels)
        valid[row, :len(ids)] = 1
    return TokenBatch(input_ids, labels, valid)


@dataclass(frozen=True)
class Substeps:
    """A batch trained as consecutive pieces, one backward pass each."""

    pieces: tuple[Any, ...]
    target_tokens: int
    tokens: int

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Substeps:
        return Substeps(tuple(piece.to(device, non_blocking) for piece in self.pieces),
                        self.target_tokens, self.tokens)


Export = Callable[[Path, dict[str, torch.Tensor], bool], None]
"""``export(folder, tensors, final)`` writes an evaluation checkpoint into ``folder`` from the
trained tensors by parameter name (main process only; ``final`` for the run's last one)."""

Generate = Callable[["Accelerator", Any, Sequence[Example]], dict[str, float]]
"""Greedy decoding metrics on dev examples (every process takes part)."""


@dataclass
class MethodParts:
    """One method's pieces of a training run."""

    module: nn.Module
    collate: Callable[[list[Example]], Any]
    base: Any
    """The base language model (for the FLOPs of a token)."""
    export: Export
    checkpoint_export: bool
    """Whether every resumable checkpoint also holds the evaluation export (cheap when the
    trained tensors are small; the fine-tuned LMs write it at the end only)."""
    external_parameters: list[nn.Parameter] = field(default_factory=list)
    """Parameters a forward reads outside their owner's forward (registered for ZeRO-3)."""
    generate: Generate | None = None
    flops_per_parameter_token: int = 4
    """4 for a frozen base (no weight gradients), 6 when the LM itself is trained."""
    supports_deepspeed: bool = True


def summed_loss(module: Any, batch: Any) -> torch.Tensor:
    """The summed token loss of ``batch`` without backward passes (evaluation)."""
    if not isinstance(batch, Substeps):
        loss: torch.Tensor = module(batch)
        return loss
    carry: Any = None
    total: torch.Tensor | None = None
    for piece in batch.pieces:
        loss, carry = module(piece, carry)
        total = loss if total is None else total + loss
    if total is None:
        raise ValueError("a batch without pieces")
    return total


def backward_passes(accelerator: Accelerator, module: Any, batch: Any, scale: float
                    ) -> torch.Tensor:
    """Forward and backward passes of one micro-batch (one per piece of :class:`Substeps`);
    returns the detached summed loss."""
    if not isinstance(batch, Substeps):
        summed: torch.Tensor = module(batch)
        accelerator.backward(summed * scale)
        return summed.detach()
    carry: Any = None
    parts = []
    for piece in batch.pieces:
        summed, carry = module(piece, carry)
        accelerator.backward(summed * scale)
        carry = carry.detach()
        parts.append(summed.detach())
    return torch.stack(parts).sum()
