"""Training of the soft compressors: configuration, presets, data, the loop and the registry of
training methods (each method's parts live in its folder under :mod:`bench.compressors.soft`).

Run it as ``python -m bench.train pretrain|finetune ...`` (or ``accelerate launch -m
bench.train ...`` on several GPUs).
"""
