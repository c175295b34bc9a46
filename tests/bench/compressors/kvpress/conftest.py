"""The kvpress tests' shared pieces: the library (or a skip), the reference fixture, the tiny
real Llama per attention implementation."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest

from bench.compressors._api import TargetModel, build_compressor
from tests.bench.compressors.soft.reference_fixtures import (
    ReferenceFixture,
    load_fixture,
    require_stories_dir,
)

METHOD = "kvpress"


def require_kvpress() -> str:
    """The installed kvpress version; skips when kvpress is absent or a version the adapter
    was not checked with."""
    from importlib.metadata import PackageNotFoundError, version

    from bench.compressors.kvpress.compat import CHECKED_VERSIONS, INSTALL_HINT

    try:
        installed = version("kvpress")
    except PackageNotFoundError:
        pytest.skip(f"kvpress is not installed ({INSTALL_HINT})")
    if installed not in CHECKED_VERSIONS:
        pytest.skip(f"kvpress {installed} is installed; the adapter is checked with "
                    f"{', '.join(CHECKED_VERSIONS)}")
    return installed


@pytest.fixture(scope="session")
def kvpress_version() -> str:
    return require_kvpress()


@pytest.fixture(scope="session")
def fixture(kvpress_version: str) -> ReferenceFixture:
    return load_fixture(METHOD)


def load_stories(attn_implementation: str) -> TargetModel:
    """The fixtures' base model as the harness loads it, with ``attn_implementation``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = require_stories_dir()
    model = AutoModelForCausalLM.from_pretrained(  # type: ignore[no-untyped-call]
        str(path), attn_implementation=attn_implementation).eval()
    return TargetModel(str(path), AutoTokenizer.from_pretrained(str(path)), model)


@pytest.fixture(scope="session")
def stories_targets(kvpress_version: str) -> dict[str, TargetModel]:
    """One loaded model per attention implementation (filled on first use)."""
    return {}


@pytest.fixture()
def make_compressor(stories_targets: dict[str, TargetModel]
                    ) -> Callable[[Mapping[str, Any], str], Any]:
    """``kvpress`` on the tiny Llama loaded with the given attention implementation."""

    def make(options: Mapping[str, Any], attn_implementation: str = "sdpa") -> Any:
        if attn_implementation not in stories_targets:
            stories_targets[attn_implementation] = load_stories(attn_implementation)
        target = stories_targets[attn_implementation]
        compressor: Any = build_compressor(METHOD, target, options)
        assert compressor.attn_implementation == attn_implementation, \
            "the options switch the shared model's attention: build it with that attention"
        return compressor

    return make
