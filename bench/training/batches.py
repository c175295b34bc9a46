"""Training data as a DataLoader: a seeded epoch sampler, tokenisation in the collate function.

Every epoch is a seeded permutation of the examples cut to a multiple of the global batch
(micro-batch x accumulation steps x processes), so a run sees the same examples in the same
optimizer steps whichever way that global batch is split. The position in the data (epoch and
micro-batches done by each process) is saved in every checkpoint and restored on resume.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from bench.substrate.errors import InputError
from bench.training.example import Example

if TYPE_CHECKING:
    from accelerate import Accelerator


class Examples(Dataset[Example]):
    """A list of examples as a map-style dataset."""

    def __init__(self, examples: Sequence[Example]) -> None:
        self.examples = list(examples)

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> Example:
        return self.examples[index]


class EpochSampler(Sampler[int]):
    """A seeded permutation per epoch (set :attr:`epoch` before iterating), cut to a multiple
    of ``global_batch``."""

    def __init__(self, size: int, seed: int, global_batch: int) -> None:
        if size < global_batch:
            raise InputError(f"{size} training examples are fewer than one global batch of "
                             f"{global_batch} (batch size x accumulation x processes); use more "
                             "examples or a smaller batch")
        self.size = size
        self.seed = seed
        self.usable = size - size % global_batch
        self.epoch = 0

    def __len__(self) -> int:
        return self.usable

    def __iter__(self) -> Iterator[int]:
        order = list(range(self.size))
        random.Random(self.seed * 1_000_003 + self.epoch).shuffle(order)
        return iter(order[:self.usable])


@dataclass
class DataPosition:
    """Where each process is in the data; saved in each process's checkpoint state."""

    epoch: int = 0
    batches: int = 0
    """Micro-batches each process has taken from the current epoch."""

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "batches": self.batches}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch, self.batches = int(state["epoch"]), int(state["batches"])


def training_loader(examples: Sequence[Example], collate: Callable[[list[Example]], Any],
                    batch_size: int, seed: int, global_batch: int
                    ) -> tuple[DataLoader[Example], EpochSampler]:
    """The DataLoader of micro-batches (to be prepared by accelerate) and its sampler."""
    sampler = EpochSampler(len(examples), seed, global_batch)
    # Its own generator: starting an iterator must not draw from the global RNG, or a
    # resumed run (which starts one after restoring the RNG) would drop out differently.
    loader = DataLoader(Examples(examples), batch_size=batch_size, sampler=sampler,
                        collate_fn=collate, drop_last=True,
                        generator=torch.Generator().manual_seed(seed))
    return loader, sampler


def micro_batches(accelerator: Accelerator, loader: Any, sampler: EpochSampler,
                  position: DataPosition) -> Iterator[Any]:
    """Endless micro-batches of this process from ``position`` on (which it keeps current)."""
    while True:
        sampler.epoch = position.epoch
        source = (accelerator.skip_first_batches(loader, position.batches)
                  if position.batches else loader)
        for batch in source:
            position.batches += 1
            yield batch
        position.epoch += 1
        position.batches = 0
