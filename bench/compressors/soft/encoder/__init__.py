"""What the encoder methods (500x, ICAE) share: the soft model with its LoRA encoder, the
input layouts, the compressor built on it, the checkpoint formats and the training parts."""
