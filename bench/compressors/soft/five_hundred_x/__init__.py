"""500x (KV memory): its compressor and its training method, registered on import."""

from bench.compressors.soft.five_hundred_x import compressor as compressor
from bench.compressors.soft.five_hundred_x import training as training
