"""Models for the soft-compressor tests: tiny random Llama/Qwen2 and the real stories260K."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


@pytest.fixture(scope="session")
def chat_eos_dirs(tiny_dirs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
                  ) -> dict[str, Path]:
    """The tiny Llama with chat-style EOS ids (:func:`tests.stop_tokens.with_chat_eos`) and
    a gist token (``plain``), and that model as an AutoCompressor checkpoint
    (``autocompressor``: two summary tokens, no recorded training segment length)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from bench.compressors.soft.autocompressor.training import save_autocompressor
    from tests.stop_tokens import with_chat_eos

    root = tmp_path_factory.mktemp("chat_eos")
    plain = with_chat_eos(tiny_dirs["llama"], root / "plain", ("<GIST>",))
    model = AutoModelForCausalLM.from_pretrained(str(plain))  # type: ignore[no-untyped-call]
    summary = torch.randn(2, model.config.hidden_size, generator=torch.Generator().manual_seed(0))
    save_autocompressor(model, summary * 0.02, AutoTokenizer.from_pretrained(str(plain)),
                        root / "autocompressor")
    return {"plain": plain, "autocompressor": root / "autocompressor"}


@pytest.fixture()
def load_method(chat_eos_dirs: dict[str, Path]) -> Callable[..., tuple[Any, TargetModel]]:
    """``load(method, **options)``: a soft compressor (``icae-v2`` for ICAE v2) on a fresh
    copy of its model from :func:`chat_eos_dirs`, and its target."""

    def load(method: str, **options: Any) -> tuple[Any, TargetModel]:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from bench.compressors import build_compressor

        folder = chat_eos_dirs["autocompressor" if method == "autocompressor" else "plain"]
        model = AutoModelForCausalLM.from_pretrained(str(folder)).eval()  # type: ignore[no-untyped-call]
        target = TargetModel(folder.name, AutoTokenizer.from_pretrained(str(folder)), model)
        name = "icae" if method == "icae-v2" else method
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "no checkpoint given", UserWarning)
            return build_compressor(name, target, options), target

    return load
