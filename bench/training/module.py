"""The module that accelerate prepares: the soft model, run inside one ``forward``.

Under FSDP and DeepSpeed ZeRO-3 a parameter is only gathered while a forward call of a module
that owns it (or registered it) runs. Training calls ``module(batch)``; evaluation passes a
function, ``module(run=fn)``, so that encoding and greedy decoding also happen inside the
prepared module's forward, with every parameter gathered as in training.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from bench.compressors.soft.encoder.model import SoftModel, TrainingBatch


class TrainingModule(nn.Module):
    """Wraps a :class:`SoftModel`; its trainable parameters are the model's."""

    def __init__(self, soft: SoftModel) -> None:
        super().__init__()
        self.soft = soft

    def forward(self, batch: TrainingBatch | None = None,
                run: Callable[[SoftModel], Any] | None = None) -> Any:
        """The summed token loss of ``batch``, or ``run(soft_model)``."""
        if run is not None:
            return run(self.soft)
        if batch is None:
            raise ValueError("TrainingModule needs a batch or a function to run")
        return self.soft.summed_loss(batch)

    def external_parameters(self) -> list[nn.Parameter]:
        """Parameters read by this forward outside their owner's forward (the ICAE trigger,
        read when the decoder inputs are built)."""
        trigger = self.soft.encoder.trigger
        return [] if trigger is None else [trigger]

