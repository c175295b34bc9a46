"""Shared fixtures of the data-builder tests: paths, a tiny tokenizer, record writers."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO / ".." / "shared"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
WORDS = [
    "alpha",
    "beta",
    "gamma",
    "delta",
    "epsilon",
    "zeta",
    "eta",
    "theta",
    "iota",
    "kappa",
    "lambda",
    "mu",
    "nu",
    "xi",
    "omicron",
    "pi",
    "rho",
    "sigma",
    "tau",
    "upsilon",
    "phi",
    "chi",
    "psi",
    "omega",
    "model",
    "data",
    "token",
    "layer",
    "vector",
    "corpus",
    "paper",
    "result",
]


def shared_path(*parts: str) -> Path:
    """A path under ../shared, skipping the test when it is absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} not available (../shared is absent)")
    return path


def random_text(seed: int, words: int = 60) -> str:
    """Seeded random text; different seeds share no 13-gram in practice."""
    rng = random.Random(seed)
    return " ".join(rng.choice(WORDS) for _ in range(words))


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def jsonl_record(paper_id: str, published: str, text: str, **extra: Any) -> dict[str, Any]:
    """A record in the arxiver JSONL layout."""
    record = {
        "title": f"Title of {paper_id}",
        "abstract": text,
        "published": published,
        "link": f"http://arxiv.org/abs/{paper_id}",
        "categories": ["cs.CL"],
        "primary_category": "cs.CL",
    }
    record.update(extra)
    return record


@pytest.fixture(scope="session")
def tiny_tokenizer(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A byte-level BPE tokenizer trained offline on random text (path as a string)."""
    from bench.tiny import train_tokenizer

    texts = [random_text(seed, 200) for seed in range(50)]
    return str(train_tokenizer(texts, tmp_path_factory.mktemp("tokenizer"), vocab_size=300))
