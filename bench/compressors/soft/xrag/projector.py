"""xRAG's projector: an MLP from the retriever's embedding to one LLM input vector.

``projector_type`` ``mlp{N}x_gelu`` is ``Linear(retriever, hidden)`` followed by N - 1 times
``GELU`` (exact erf) and ``Linear(hidden, hidden)``; the released model uses ``mlp2x_gelu``.
Its tensors are ``projector.projector.{i}.weight``/``.bias`` in the full model's state.
"""

from __future__ import annotations

import re

import torch
from torch import nn

PROJECTOR_TYPE = re.compile(r"mlp(\d+)x_gelu")
STATE_PREFIX = "projector.projector."
"""How the projector's tensors are named in the released model's state dict."""


def projector_depth(projector_type: str) -> int:
    """The number of linear layers of ``projector_type`` (``mlp{N}x_gelu``)."""
    matched = PROJECTOR_TYPE.fullmatch(projector_type)
    if matched is None or int(matched.group(1)) < 1:
        raise ValueError(f"xrag: projector_type {projector_type!r} is not supported; "
                         "expected mlp<N>x_gelu (the released model: mlp2x_gelu)")
    return int(matched.group(1))


class Projector(nn.Module):
    """The MLP of ``projector_type`` from ``in_features`` to ``hidden_size``."""

    def __init__(self, projector_type: str, in_features: int, hidden_size: int) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Linear(in_features, hidden_size)]
        for _ in range(1, projector_depth(projector_type)):
            layers += [nn.GELU(), nn.Linear(hidden_size, hidden_size)]
        self.projector = nn.Sequential(*layers)
        self.projector_type = projector_type

    @property
    def first(self) -> nn.Linear:
        layer = self.projector[0]
        assert isinstance(layer, nn.Linear)
        return layer

    @property
    def in_features(self) -> int:
        return int(self.first.in_features)

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        weight = self.first.weight
        projected: torch.Tensor = self.projector(embeddings.to(device=weight.device,
                                                               dtype=weight.dtype))
        return projected

    def init_weights(self, std: float) -> None:
        """Weights drawn from N(0, std), biases 0 (the base LLM's linear initialisation)."""
        with torch.no_grad():
            for layer in self.projector:
                if isinstance(layer, nn.Linear):
                    layer.weight.normal_(0.0, std)
                    layer.bias.zero_()

    def released_state(self) -> dict[str, torch.Tensor]:
        """The tensors under their names in the released model's state dict."""
        return {STATE_PREFIX + name: tensor for name, tensor in self.projector.state_dict().items()}
