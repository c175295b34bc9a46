"""Story-like training data sampled from the real tiny Llama (skipped when it is absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]
STORIES = REPO_ROOT / ".." / "shared" / "data" / "stories260K_hf"


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread: None) -> None:
    """Training tests run with one torch thread."""


@pytest.fixture(scope="session")
def stories() -> Path:
    if not STORIES.is_dir():
        pytest.skip(f"real tiny model not found at {STORIES} (developer checkouts only)")
    return STORIES.resolve()


@pytest.fixture(scope="session")
def tied_stories(stories: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real tiny Llama with its output embedding tied to its input embedding
    (``tie_word_embeddings``, as SmolLM2, Llama-3.2-1B, Qwen2.5-0.5B and Gemma have it): one
    tensor serves both, the input embedding's."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

    untied = AutoModelForCausalLM.from_pretrained(str(stories))  # type: ignore[no-untyped-call]
    config = LlamaConfig.from_dict({**untied.config.to_dict(), "tie_word_embeddings": True})
    model = LlamaForCausalLM(config)
    model.load_state_dict({name: value for name, value in untied.state_dict().items()
                           if name != "lm_head.weight"}, strict=False)
    model.tie_weights()  # type: ignore[no-untyped-call]
    assert model.lm_head.weight is model.model.embed_tokens.weight
    folder = tmp_path_factory.mktemp("stories_tied")
    model.save_pretrained(str(folder))
    AutoTokenizer.from_pretrained(str(stories)).save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="session")
def story_corpus(stories: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from bench.training.synthetic import sample_texts, write_text_corpus

    model = AutoModelForCausalLM.from_pretrained(str(stories)).eval()  # type: ignore[no-untyped-call]
    tokenizer = AutoTokenizer.from_pretrained(str(stories))
    texts = sample_texts(model, tokenizer, 200, 48, seed=0)
    return write_text_corpus(texts, tmp_path_factory.mktemp("stories_corpus"), dev=16)


@pytest.fixture()
def small_corpus(tmp_path: Path) -> Path:
    """A pretraining folder of 48 short fixed texts (instant, unlike :func:`story_corpus`)."""
    from bench.training.synthetic import write_text_corpus

    texts = [f"Lily had {n} red balls. She gave {n % 3} of them to Tom." for n in range(48)]
    return write_text_corpus(texts, tmp_path / "small_corpus", dev=8)
