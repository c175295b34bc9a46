"""Training 500x: the encoder's LoRA and memory slots on a frozen base, KV memory."""

from __future__ import annotations

from functools import partial

from bench.compressors.soft.encoder.layout import DECODER_POSITIONS
from bench.compressors.soft.encoder.training import ENCODER_SETTINGS, soft_parts
from bench.compressors.soft.five_hundred_x.compressor import KVSoftModel
from bench.training.registry import Setting, TrainingMethod, register_training_method

FIVE_HUNDRED_X = register_training_method(TrainingMethod(
    name="500x",
    summary="KV memory",
    parts=partial(soft_parts, KVSoftModel),
    settings={**ENCODER_SETTINGS,
              "decoder_positions": Setting("compressbench layout: decoder tokens continue "
                                           "after the memory positions (continue) or restart "
                                           "at k (restart)", choices=DECODER_POSITIONS,
                                           default_text="continue with --layout compressbench")},
))
