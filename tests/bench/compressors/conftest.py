"""Tiny local models shared by the hard-compressor tests (built once per session, offline)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.compressors._api import TargetModel

REPO_ROOT = Path(__file__).resolve().parents[3]
SHARED = REPO_ROOT / ".." / "shared"
SQUAD_DEV = SHARED / "data" / "mrqa_dev" / "SQuAD.jsonl.gz"
GPT2_TOKENIZER = SHARED / "data" / "gpt2_tokenizer"

CORPUS = (
    "Super Bowl 50 was an American football game to determine the champion of the league "
    "for the 2015 season. The Denver Broncos defeated the Carolina Panthers to earn their "
    "third title. The game was played on February 7, 2016, at Levi's Stadium in Santa Clara.",
    "The Normans were the people who in the 10th and 11th centuries gave their name to "
    "Normandy, a region in France. They were descended from Norse raiders and pirates.",
    "Computational complexity theory is a branch of the theory of computation that focuses "
    "on classifying problems according to their difficulty, and relating those classes.",
    "Southern California is a region that includes ten counties. It is home to Los Angeles, "
    "the second most populous city in the United States, and to many beaches and deserts.",
    "Oxygen is a chemical element with symbol O and atomic number 8. It is a member of the "
    "chalcogen group and a highly reactive nonmetal that readily forms oxides.",
)


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread: None) -> None:
    """Every compressor test (hard and soft) runs with one torch thread."""


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hard_tiny")


@pytest.fixture(scope="session")
def target_model_dir(tiny_dir: Path) -> Path:
    from bench.tiny import build_tiny_model

    return build_tiny_model(CORPUS * 4, tiny_dir / "target", architecture="llama", seed=0)


@pytest.fixture(scope="session")
def causal_compressor_dir(tiny_dir: Path) -> Path:
    from bench.tiny import build_tiny_model

    return build_tiny_model(CORPUS * 4, tiny_dir / "compressor", architecture="qwen2", seed=1,
                            vocab_size=400)


@pytest.fixture(scope="session")
def classifier_dir(tiny_dir: Path) -> Path:
    from bench.compressors._hard_tiny import build_tiny_token_classifier

    return build_tiny_token_classifier(CORPUS * 4, tiny_dir / "classifier", seed=2, vocab_size=400)


@pytest.fixture(scope="session")
def target(target_model_dir: Path) -> TargetModel:
    from transformers import AutoTokenizer

    return TargetModel("tiny-target", AutoTokenizer.from_pretrained(str(target_model_dir)))


def read_squad_contexts(limit: int, skip: int = 0) -> list[tuple[str, str]]:
    """(context, first question) pairs from the MRQA SQuAD dev file in ../shared."""
    import gzip
    import json

    pairs: list[tuple[str, str]] = []
    with gzip.open(SQUAD_DEV, "rt", encoding="utf-8") as handle:
        next(handle)
        for index, line in enumerate(handle):
            if index < skip:
                continue
            record = json.loads(line)
            pairs.append((record["context"], record["qas"][0]["question"]))
            if len(pairs) == limit:
                break
    return pairs
