"""Training of the encoder-based soft compressors (500x, ICAE): presets, data and loop.

Run it as ``python -m bench.train pretrain|finetune ...`` (or ``accelerate launch -m
bench.train ...`` on several GPUs).
"""

from bench.training.config import PRESETS, TrainConfig, preset_values
from bench.training.data import load_examples
from bench.training.loop import TrainResult, train

__all__ = ["PRESETS", "TrainConfig", "TrainResult", "load_examples", "preset_values", "train"]
