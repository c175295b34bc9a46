"""KV-cache presses run through NVIDIA's kvpress library (``compressor=kvpress``).

kvpress itself is imported only when the compressor is built (the ``kv`` extra, see README);
importing this package registers the compressor.
"""

from bench.compressors.kvpress.compressor import KVPress, KVPressOptions, make_kvpress

__all__ = ["KVPress", "KVPressOptions", "make_kvpress"]
