"""Typed access to the parts of a transformers causal LM the soft methods use."""

from __future__ import annotations

from typing import Any, cast

from torch import nn


def input_embedding(model: Any) -> nn.Embedding:
    """The model's token embedding module (an ``nn.Embedding`` or a subclass)."""
    return cast(nn.Embedding, model.get_input_embeddings())
