from tests.bench.training.conftest import _one_thread, small_corpus

__all__ = ["_one_thread", "small_corpus"]
