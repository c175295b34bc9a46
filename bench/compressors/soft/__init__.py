"""Soft compressors, one folder per method with its compressor and training: ``500x`` (KV
memory), ``icae`` (embedding memory), ``icae_v2``, ``gist``, ``autocompressor`` and ``cram``
(per-sample optimised vectors, an upper bound). Importing this package registers them."""

from bench.compressors.soft import autocompressor as autocompressor
from bench.compressors.soft import cram as cram
from bench.compressors.soft import five_hundred_x as five_hundred_x
from bench.compressors.soft import gist as gist
from bench.compressors.soft import icae as icae
from bench.compressors.soft import pisco as pisco
from bench.compressors.soft import xrag as xrag
from bench.compressors.soft.cram.compressor import Cram, CramOptions, make_cram
from bench.compressors.soft.five_hundred_x.compressor import FiveHundredX, KVSoftModel, make_500x
from bench.compressors.soft.icae.compressor import EmbeddingSoftModel, Icae, make_icae

__all__ = [
    "Cram",
    "CramOptions",
    "EmbeddingSoftModel",
    "FiveHundredX",
    "Icae",
    "KVSoftModel",
    "make_500x",
    "make_cram",
    "make_icae",
]
