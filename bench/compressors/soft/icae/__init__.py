"""ICAE (embedding memory): its compressor and its training method (the 500xCompressor
code's baseline), registered on import."""

from bench.compressors.soft.icae import compressor as compressor
from bench.compressors.soft.icae import training as training
