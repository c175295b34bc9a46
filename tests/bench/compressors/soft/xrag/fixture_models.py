"""The xRAG reference fixture's models as the harness loads them.

Each case names its checkpoint (a folder of the fixture, the released full-model format) and
its retriever (a folder under ``shared/data``, found beside the fixture root). A compressor is
built per (checkpoint, retriever) through the public factory.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

from bench.compressors._api import TargetModel, build_compressor
from bench.compressors.soft.xrag.compressor import Xrag
from tests.bench.compressors.soft.reference_fixtures import (
    ReferenceFixture,
    reference_root,
    report_missing,
)

METHOD = "xrag"
SHARED_DATA = PurePosixPath("shared/data")


def retriever_dir(case: dict[str, Any]) -> Path:
    """The case's retriever folder, beside the fixture root (``shared/data/...``)."""
    path = reference_root().parent / PurePosixPath(case["retriever"]).relative_to(SHARED_DATA)
    if not path.is_dir():
        report_missing("the retriever of the xRAG fixtures", path)
    return path


def load_target(folder: Path) -> TargetModel:
    """An xRAG checkpoint folder as the harness loads ``pretrained=``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(folder)).eval()  # type: ignore[no-untyped-call]
    return TargetModel(str(folder), AutoTokenizer.from_pretrained(str(folder)), model)


def compressor_options(case: dict[str, Any]) -> dict[str, Any]:
    """The options of a case: its retriever and length, one document per paragraph."""
    return {"retriever": str(retriever_dir(case)),
            "retriever_max_length": case["retriever_max_length"], "split": "paragraphs"}


def case_context(case: dict[str, Any]) -> str:
    """The case's documents as one context, one paragraph each (``split=paragraphs``)."""
    assert not any("\n\n" in document for document in case["documents"]), case["id"]
    return "\n\n".join(case["documents"])


class Compressors:
    """One compressor (own model copy) per checkpoint, retriever and length."""

    def __init__(self, fixture: ReferenceFixture) -> None:
        self.fixture = fixture
        self.built: dict[tuple[str, str, int], Xrag] = {}

    def __call__(self, case: dict[str, Any]) -> Xrag:
        key = (case["checkpoint"], case["retriever"], case["retriever_max_length"])
        if key not in self.built:
            target = load_target(self.fixture.path / case["checkpoint"])
            built = build_compressor(METHOD, target, compressor_options(case))
            assert isinstance(built, Xrag)
            self.built[key] = built
        return self.built[key]
