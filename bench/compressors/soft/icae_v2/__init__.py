"""ICAE v2 (the published Mistral checkpoint): its compressor, model, checkpoint format and
layout, registered on import."""

from bench.compressors.soft.icae_v2 import compressor as compressor
