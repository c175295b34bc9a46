"""Compressors: the typed interface, the registry and the built-in methods.

Third-party packages register factories under the entry-point group
``compressbench.compressors`` (see README, "Writing a compressor").
"""

from bench.compressors._api import (
    ENTRY_POINT_GROUP,
    CompressionRequest,
    Compressor,
    CompressorFactory,
    SoftDecoder,
    TargetModel,
    UnknownCompressorError,
    available_compressors,
    build_compressor,
    get_compressor_factory,
    options_type_of,
    parse_options,
    register_compressor,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "CompressionRequest",
    "Compressor",
    "CompressorFactory",
    "SoftDecoder",
    "TargetModel",
    "UnknownCompressorError",
    "available_compressors",
    "build_compressor",
    "get_compressor_factory",
    "options_type_of",
    "parse_options",
    "register_compressor",
]
