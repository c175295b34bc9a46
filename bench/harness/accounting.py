"""Cost accounting: analytic FLOPs of answering, and peak memory."""

from __future__ import annotations

import resource
import sys
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ModelShape:
    """What the FLOPs estimate needs to know about a decoder-only transformer."""

    parameters: int
    layers: int
    hidden: int

    @classmethod
    def of(cls, model: Any) -> ModelShape:
        """Shape of a transformers model (non-embedding parameters)."""
        config = model.config
        text_config = getattr(config, "get_text_config", lambda: config)()
        embedding = model.get_input_embeddings().weight.numel()
        total = sum(p.numel() for p in model.parameters())
        return cls(total - embedding, int(text_config.num_hidden_layers),
                   int(text_config.hidden_size))


def answer_flops(shape: ModelShape, prompt_tokens: int, generated_tokens: int) -> float:
    """Forward FLOPs of reading ``prompt_tokens`` and generating ``generated_tokens``.

    ``2 N`` per token for the weights plus ``4 L d t`` for attention over ``t`` earlier
    positions (scores and weighted values), summed over every processed position.
    """
    total_tokens = prompt_tokens + generated_tokens
    weights = 2.0 * shape.parameters * total_tokens
    attended = total_tokens * (total_tokens + 1) / 2.0
    return weights + 4.0 * shape.layers * shape.hidden * attended


def flops_ratio(shape: ModelShape | None, full_prompt: int, compressed_prompt: int,
                generated: int) -> float:
    """Answer FLOPs with the compressed prompt / with the full prompt (same generation)."""
    if shape is None:
        return compressed_prompt / full_prompt if full_prompt else 1.0
    full = answer_flops(shape, full_prompt, generated)
    return answer_flops(shape, compressed_prompt, generated) / full if full else 1.0


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB (plus CUDA peak when present)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rss_mb = peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024
    return float(rss_mb)


def peak_cuda_mb() -> float | None:
    """Peak CUDA memory allocated by torch in MiB, or None without CUDA."""
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    return float(torch.cuda.max_memory_allocated()) / (1024 * 1024)
