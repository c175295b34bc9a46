"""The training tests' data: story-like texts from the real tiny Llama, one torch thread."""

from tests.bench.training.conftest import _one_thread, stories, story_corpus

__all__ = ["_one_thread", "stories", "story_corpus"]
