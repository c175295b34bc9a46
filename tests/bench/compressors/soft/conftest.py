"""Models for the soft-compressor tests: tiny random Llama/Qwen2 and the real stories260K."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from bench.compressors._api import TargetModel

REPO_ROOT = Path(__file__).resolve().parents[4]
STORIES = REPO_ROOT / ".." / "shared" / "data" / "stories260K_hf"

TEXTS = (
    "Lily saw a big red ball in the park. She wanted to play with it.",
    "Tom and his dog went to the lake. They saw a fish jump out of the water.",
    "The sun was hot, so the cat slept under the tree all day long.",
    "Mia had a small box. Inside the box there was a shiny blue stone.",
    "Ben liked to draw pictures of cars, trains and big yellow buses.",
) * 4


@pytest.fixture(scope="session")
def tiny_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from bench.tiny import build_tiny_model

    root = tmp_path_factory.mktemp("soft_tiny")
    return {arch: build_tiny_model(TEXTS, root / arch, architecture=arch, seed=3)  # type: ignore[arg-type]
            for arch in ("llama", "qwen2")}


@pytest.fixture()
def load_target(tiny_dirs: dict[str, Path]) -> Callable[[str], TargetModel]:
    """A fresh TargetModel (own model copy) for "llama", "qwen2" or "stories"."""

    def load(which: str) -> TargetModel:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if which == "stories":
            if not STORIES.is_dir():
                pytest.skip(f"real tiny model not found at {STORIES} (developer checkouts only)")
            path = STORIES
        else:
            path = tiny_dirs[which]
        model = AutoModelForCausalLM.from_pretrained(str(path)).eval()  # type: ignore[no-untyped-call]
        return TargetModel(path.name, AutoTokenizer.from_pretrained(str(path)), model)

    return load
