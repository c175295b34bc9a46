"""PISCO (naver/pisco): its compressor, model, checkpoint layout and training, registered on
import."""

from bench.compressors.soft.pisco import compressor as compressor
from bench.compressors.soft.pisco import training as training
