"""Tokens per second and model FLOPs utilisation (MFU) of training steps.

A training token costs about 4 N FLOPs for a frozen base of N parameters (forward 2 N, the
backward pass through the activations 2 N; frozen weights get no weight gradients, and the
LoRA terms are negligible); N leaves out the input embedding (a lookup), unless it is tied to
the output layer. Recomputation by gradient checkpointing is not counted, as MFU does not.
"""

from __future__ import annotations

from typing import Any

from torch import nn

FLOPS_PER_PARAMETER_TOKEN = 4
# Dense bf16 peak TFLOP/s by device name fragment (first match wins).
PEAK_BF16_TFLOPS = (
    ("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("H100", 989.0), ("H200", 989.0),
    ("GH200", 989.0), ("B200", 2250.0), ("A100", 312.0), ("L40S", 362.0),
)


def compute_parameters(base: Any) -> int:
    """Parameters whose matmuls a token goes through (DeepSpeed-partitioned ones counted
    whole)."""
    embedding = base.get_input_embeddings().weight
    output = base.get_output_embeddings()
    tied = output is not None and output.weight is embedding
    total = 0
    for parameter in base.parameters():
        if parameter is embedding and not tied:
            continue
        total += int(getattr(parameter, "ds_numel", parameter.numel()))
    return total


def peak_tflops(device_name: str) -> float | None:
    """The dense bf16 peak of a known GPU (None when unknown)."""
    for fragment, peak in PEAK_BF16_TFLOPS:
        if fragment in device_name:
            return peak
    return None


def mfu(tokens_per_second: float, parameters: int, processes: int, peak: float,
        flops_per_parameter_token: int = FLOPS_PER_PARAMETER_TOKEN) -> float:
    """Achieved model FLOP/s over the peak of all ``processes`` devices (``peak`` TFLOP/s);
    ``flops_per_parameter_token`` is 6 when the base gets weight gradients too."""
    return flops_per_parameter_token * parameters * tokens_per_second / (
        peak * 1e12 * processes)


def count_trainable(module: nn.Module) -> int:
    return sum(int(getattr(p, "ds_numel", p.numel())) for p in module.parameters()
               if p.requires_grad)
