"""The training tests' base model (the real tiny Llama) and one torch thread."""

from tests.bench.training.conftest import _one_thread, stories

__all__ = ["_one_thread", "stories"]
