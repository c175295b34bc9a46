"""AutoCompressor: the compressor and the training method (the LM learns summary
vectors), registered on import."""

from bench.compressors.soft.autocompressor import compressor as compressor
from bench.compressors.soft.autocompressor import training as training
