"""The PISCO model: compressor LM, connector MLP and decoder, for inference and training.

The compressor reads left-padded rows (its ids, then ``<MEM>`` tokens) at positions
0..T-1 of the padded row, pads included, as the reference runs it; its last-layer hidden
states (after the final norm) at the ``<MEM>`` tokens, row by row, go through the connector
``Linear, ReLU, Linear``. The decoder's ``<MEM>`` placeholders are replaced by those vectors
in order. For the loss, the decoder likewise reads its left-padded rows at positions 0..L-1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bench.compressors.soft.pisco.layout import IGNORE, DecoderIds


def make_connector(compressor_hidden: int, mlp_hidden: int, decoder_hidden: int) -> nn.Sequential:
    """The connector: ``Linear(c, mlp), ReLU, Linear(mlp, d)``."""
    return nn.Sequential(nn.Linear(compressor_hidden, mlp_hidden), nn.ReLU(),
                         nn.Linear(mlp_hidden, decoder_hidden))


@dataclass(frozen=True)
class PiscoBatch:
    """Collated training rows: compressor rows, decoder rows and their labels (-100: no
    target; position t is predicted from the positions before it)."""

    compressor_input_ids: torch.Tensor
    compressor_attention_mask: torch.Tensor
    decoder_input_ids: torch.Tensor
    decoder_attention_mask: torch.Tensor
    labels: torch.Tensor

    @property
    def target_tokens(self) -> int:
        return int((self.labels[:, 1:] != IGNORE).sum())

    @property
    def tokens(self) -> int:
        return int(self.compressor_attention_mask.sum() + self.decoder_attention_mask.sum())

    def to(self, device: torch.device | str, non_blocking: bool = False) -> PiscoBatch:
        return PiscoBatch(*(tensor.to(device, non_blocking=non_blocking) for tensor in (
            self.compressor_input_ids, self.compressor_attention_mask, self.decoder_input_ids,
            self.decoder_attention_mask, self.labels)))


def _positions(mask: torch.Tensor) -> torch.Tensor:
    """Positions 0..T-1 of every padded row, pads included."""
    return torch.arange(mask.shape[1], device=mask.device)[None].expand(mask.shape[0], -1)


class PiscoModel(nn.Module):
    """Compressor, connector and decoder of one PISCO model."""

    def __init__(self, compressor: Any, connector: nn.Sequential, decoder: Any,
                 compressor_mem: int, ids: DecoderIds) -> None:
        super().__init__()
        self.compressor = compressor
        self.connector = connector
        self.decoder = decoder
        self.compressor_mem = compressor_mem
        self.ids = ids

    @property
    def device(self) -> torch.device:
        return next(self.connector.parameters()).device

    def memory_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor
                      ) -> torch.Tensor:
        """``[memories, compressor hidden]``: the compressor's final-norm hidden states at
        every ``<MEM>`` of the rows, in row order."""
        hidden = self.compressor.base_model(input_ids=input_ids, attention_mask=attention_mask,
                                            position_ids=_positions(attention_mask),
                                            use_cache=False).last_hidden_state
        states: torch.Tensor = hidden[input_ids == self.compressor_mem]
        return states

    def compress(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """``[memories, decoder hidden]``: the connector's vectors of every ``<MEM>``."""
        vectors: torch.Tensor = self.connector(self.memory_states(input_ids, attention_mask))
        return vectors

    def decoder_embeddings(self, decoder_ids: torch.Tensor, memory: torch.Tensor
                           ) -> torch.Tensor:
        """Decoder input vectors ``[B, L, hidden]``: the ids' embeddings with the ``<MEM>``
        placeholders replaced, in order, by ``memory``."""
        embeds: torch.Tensor = self.decoder.get_input_embeddings()(decoder_ids)
        is_memory = decoder_ids == self.ids.mem
        placeholders = int(is_memory.sum())
        if placeholders != memory.shape[0]:
            raise ValueError(f"pisco: {placeholders} <MEM> placeholders in the decoder input "
                             f"for {memory.shape[0]} compressed vectors")
        return embeds.masked_scatter(is_memory[..., None], memory.to(embeds.dtype))

    def summed_loss(self, batch: PiscoBatch) -> torch.Tensor:
        """Summed next-token cross-entropy over the batch's targets."""
        memory = self.compress(batch.compressor_input_ids, batch.compressor_attention_mask)
        embeds = self.decoder_embeddings(batch.decoder_input_ids, memory)
        mask = batch.decoder_attention_mask
        logits = self.decoder(inputs_embeds=embeds, attention_mask=mask,
                              position_ids=_positions(mask), use_cache=False).logits
        shifted = logits[:, :-1].float()
        return F.cross_entropy(shifted.reshape(-1, shifted.shape[-1]),
                               batch.labels[:, 1:].reshape(-1), ignore_index=IGNORE,
                               reduction="sum")

    def forward(self, batch: PiscoBatch) -> torch.Tensor:
        return self.summed_loss(batch)
