"""Training ICAE as the 500xCompressor code's baseline: the encoder's LoRA, memory slots and
trigger on a frozen base, embedding memory."""

from __future__ import annotations

from functools import partial

from bench.compressors.soft.encoder.training import ENCODER_SETTINGS, soft_parts
from bench.compressors.soft.icae.compressor import EmbeddingSoftModel
from bench.training.registry import TrainingMethod, register_training_method

ICAE = register_training_method(TrainingMethod(
    name="icae",
    summary="embedding memory; the 500xCompressor code's ICAE baseline, i.e. compressor "
            "icae,variant=500x-baseline",
    parts=partial(soft_parts, EmbeddingSoftModel),
    settings=ENCODER_SETTINGS,
    # Fine-tuning leaves the regeneration trigger without a gradient.
    every_parameter_trained_in=("pretrain",),
))
