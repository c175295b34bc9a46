"""Gist tokens: the compressor and the training method (the LM learns to compress into
gist tokens), registered on import."""

from bench.compressors.soft.gist import compressor as compressor
from bench.compressors.soft.gist import training as training
