"""``bench eval --help``: every built-in compressor option is listed once, with the default the
code uses (from the option's declaration) and what it does, and no internal names."""

from __future__ import annotations

import re
from types import SimpleNamespace
from typing import Any

import pytest

from bench.compressors import (
    _api,
    available_compressors,
    get_compressor_factory,
    option_docs,
    options_type_of,
)
from bench.lmeval.eval_help import compressors_help, option_line

BUILT_IN = sorted(name for name in available_compressors() if name in _api._REGISTRY)


def _block(text: str, name: str) -> str:
    """The help block of compressor ``name``, whitespace collapsed."""
    match = re.search(rf"\n  {re.escape(name)}\n(.*?)(?=\n  \S|\Z)", text, re.S)
    assert match is not None, name
    return " ".join(match.group(1).split())


@pytest.fixture(scope="module")
def text() -> str:
    return compressors_help()


@pytest.mark.parametrize("name", BUILT_IN)
def test_each_option_is_documented_with_its_default_stated_once(text: str, name: str) -> None:
    options = options_type_of(name)
    assert options is not None, name
    block = _block(text, name)
    docs = option_docs(options)
    for doc in docs:
        assert doc.about, f"{name}: option {doc.name} is undocumented"
        line = " ".join(option_line(doc).split())
        assert line in block, f"{name}: {line}"
        assert line.lower().count("default") == 1, f"{name}: {line}"
    assert block.lower().count("default") == len(docs), name


def test_the_help_names_no_internal_module_or_class(text: str) -> None:
    assert not re.search(r"\(\.|\s\._|\bsee \.|\bbench\.|:mod:|:class:", text)
    for name in BUILT_IN:
        options = options_type_of(name)
        assert options is not None and options.__name__ not in text, name


def test_truncate_lists_no_seed_and_random_drop_does(text: str) -> None:
    assert "seed" not in _block(text, "truncate")
    assert "seed (int; default: 0)" in _block(text, "random_drop")


@pytest.mark.parametrize(("name", "kind"), [("llmlingua", "causal"),
                                            ("llmlingua2", "token_classification")])
def test_the_default_compressor_model_shown_is_the_one_loaded(
        monkeypatch: pytest.MonkeyPatch, text: str, name: str, kind: str) -> None:
    from bench.compressors import llmlingua_family

    loaded: list[str] = []

    class Library:
        def __init__(self, model_name: str, **_: Any) -> None:
            loaded.append(model_name)
            raise RuntimeError("stop after choosing the model")

    monkeypatch.setattr(llmlingua_family, "import_llmlingua",
                        lambda method: SimpleNamespace(PromptCompressor=Library,
                                                       tiktoken=SimpleNamespace(
                                                           encoding_for_model=None)))
    monkeypatch.setattr(llmlingua_family, "check_model_kind", lambda *args: None)
    target = SimpleNamespace(name="t", tokenizer=None, model=None, device="cpu",
                             count_tokens=lambda t: 0)
    with pytest.raises(RuntimeError, match="stop after choosing"):
        get_compressor_factory(name)(target, {})  # type: ignore[arg-type]
    assert f"compressor_model (str; default: {loaded[0]})" in _block(text, name)


def test_a_default_decided_later_is_said_in_the_declarations_words(text: str) -> None:
    from bench.compressors.soft.encoder.compressor import DEFAULT_NUM_MEM

    assert (f"num_mem (int; default: the checkpoint's, else {DEFAULT_NUM_MEM}; accepts >= 1): "
            "memory slots k") in _block(text, "500x")
