"""Soft compressors: ``500x`` (KV memory), ``icae`` (embedding memory) and ``cram``
(per-sample optimised vectors, an upper bound). Importing this package registers them."""

from bench.compressors.soft.autocompressor import make_autocompressor as make_autocompressor
from bench.compressors.soft.cram import Cram, CramOptions, make_cram
from bench.compressors.soft.five_hundred_x import FiveHundredX, KVSoftModel, make_500x
from bench.compressors.soft.gist import make_gist as make_gist
from bench.compressors.soft.icae import EmbeddingSoftModel, Icae, make_icae

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
