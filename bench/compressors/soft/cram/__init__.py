"""CRAM: per-sample optimised vectors (an upper bound), registered on import."""

from bench.compressors.soft.cram import compressor as compressor
