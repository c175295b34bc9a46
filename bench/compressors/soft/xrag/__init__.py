"""xRAG: the compressor (one projected retriever embedding per document) and its training
method (the projector, on a frozen LLM and retriever), registered on import."""

from bench.compressors.soft.xrag import compressor as compressor
from bench.compressors.soft.xrag import training as training
