"""Between lm-eval and the compressors: split prompts, compress once, cache, account."""
