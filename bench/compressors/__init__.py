"""Compressors: the typed interface, the registry and the built-in methods.

Third-party packages register factories under the entry-point group
``compressbench.compressors`` (see README, "Writing a compressor").
"""

from bench.compressors._api import (
    ENTRY_POINT_GROUP,
    UNDECLARED,
    Capabilities,
    CompressionRequest,
    Compressor,
    CompressorFactory,
    Family,
    Interval,
    OptionDoc,
    PromptEmbeddingsDecoder,
    Registration,
    SoftDecoder,
    TargetModel,
    UnknownCompressorError,
    available_compressors,
    build_compressor,
    capabilities_of,
    get_compressor_factory,
    get_registration,
    option,
    option_docs,
    options_type_of,
    parse_options,
    register_compressor,
    validate_options,
)
from bench.compressors._shared_work import SharedWork, shared_work

__all__ = [
    "ENTRY_POINT_GROUP",
    "UNDECLARED",
    "Capabilities",
    "CompressionRequest",
    "Compressor",
    "CompressorFactory",
    "Family",
    "Interval",
    "OptionDoc",
    "PromptEmbeddingsDecoder",
    "Registration",
    "SharedWork",
    "SoftDecoder",
    "TargetModel",
    "UnknownCompressorError",
    "available_compressors",
    "build_compressor",
    "capabilities_of",
    "get_compressor_factory",
    "get_registration",
    "option",
    "option_docs",
    "options_type_of",
    "parse_options",
    "register_compressor",
    "shared_work",
    "validate_options",
]
