"""``xrag`` beyond parity: registration, prompts, ``split=``, ``checkpoint=``, the size of the
compressed form and the refusals of checkpoints that do not fit."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

from bench.compressors._api import (
    CompressionRequest,
    Family,
    build_compressor,
    capabilities_of,
    options_type_of,
)
from bench.compressors.bits import soft_bits
from bench.compressors.soft._checkpoint_files import read_tensors
from bench.compressors.soft.autocompressor.checkpoint import weight_files
from bench.compressors.soft.xrag.checkpoint import XragCheckpointError
from bench.compressors.soft.xrag.compressor import XragOptions, split_documents
from bench.compressors.soft.xrag.prompts import qa_prompt, question_text, regeneration_prompt
from bench.compressors.soft.xrag.retriever import split_by_tokens
from bench.records import CompressedEmbeddings
from bench.substrate.errors import InputError
from tests.bench.compressors.soft.reference_fixtures import (
    ReferenceFixture,
    case_ids,
    load_fixture,
)
from tests.bench.compressors.soft.xrag.fixture_models import (
    METHOD,
    case_context,
    compressor_options,
    load_target,
    retriever_dir,
)


@pytest.fixture(scope="module")
def fixture() -> ReferenceFixture:
    return load_fixture(METHOD)


def first_case(fixture: ReferenceFixture, kind: str) -> dict[str, Any]:
    ids = case_ids(METHOD, kind)
    if not ids:
        pytest.skip(f"the fixture set has no {kind} case")
    return fixture.case(ids[0])


def test_registration_declares_soft_embeddings_not_question_aware() -> None:
    capabilities = capabilities_of(METHOD)
    assert capabilities.family is Family.SOFT_EMBEDDINGS
    assert not capabilities.uses_question({})
    assert options_type_of(METHOD) is XragOptions


def test_prompts() -> None:
    assert question_text("Who came") == question_text(" Who came? ") == "Who came?"
    assert qa_prompt(2, "Who came").endswith(
        "Background: <xRAG> <xRAG>\n\nQuestion: Who came? [/INST] The answer is:")
    assert regeneration_prompt(2) == "[INST] Background: <xRAG> <xRAG> means the same as [/INST]"


def test_split_modes(fixture: ReferenceFixture) -> None:
    from transformers import AutoTokenizer

    case = first_case(fixture, "qa")
    tokenizer = AutoTokenizer.from_pretrained(str(retriever_dir(case)))
    retriever: Any = type("R", (), {"tokenizer": tokenizer, "max_length": 16})()
    context = "One line.\nTwo line.\n \t\nThree para.\n\n\nFour."
    assert split_documents(context, "none", retriever) == [context]
    assert split_documents(context, "lines", retriever) == ["One line.", "Two line.",
                                                            "Three para.", "Four."]
    assert split_documents(context, "paragraphs", retriever) == ["One line.\nTwo line.",
                                                                 "Three para.", "Four."]
    text = " ".join(case["documents"] * 4)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    for chunk in (24, 32, 40):
        full, rest = divmod(len(ids), chunk)
        kept = full + (1 if rest and (rest > 20 or full == 0) else 0)
        pieces = split_by_tokens(tokenizer, text, chunk, None)
        assert pieces == [tokenizer.decode(ids[start:start + chunk])
                          for start in range(0, kept * chunk, chunk)]
    assert split_by_tokens(tokenizer, text, 24, 30) == [tokenizer.decode(ids[:24])]


def test_an_unknown_split_is_refused(fixture: ReferenceFixture) -> None:
    case = first_case(fixture, "qa")
    target = load_target(fixture.path / case["checkpoint"])
    with pytest.raises(InputError, match="split"):
        build_compressor(METHOD, target, {**compressor_options(case), "split": "words"})


def test_checkpoint_option_reads_that_projector_and_bits_count_every_value(
        fixture: ReferenceFixture) -> None:
    regeneration = first_case(fixture, "regeneration")
    other = next((case for case in fixture.cases
                  if case["checkpoint"] != regeneration["checkpoint"]), None)
    if other is None:
        pytest.skip("the fixture set has one checkpoint")
    target = load_target(fixture.path / other["checkpoint"])
    options = {**compressor_options(regeneration),
               "checkpoint": str(fixture.path / regeneration["checkpoint"])}
    compressor: Any = build_compressor(METHOD, target, options)
    result = compressor.compress([CompressionRequest(case_context(regeneration))])[0]
    assert isinstance(result, CompressedEmbeddings)
    expected = fixture.tensors[f"{regeneration['id']}.projected"]
    torch.testing.assert_close(result.embeddings, expected, atol=fixture.tensor_atol,
                               rtol=fixture.tensor_rtol)
    assert compressor.settings()["projector_checkpoint"] == options["checkpoint"]
    hidden = int(target.model.config.hidden_size)  # type: ignore[union-attr]
    assert soft_bits(result) == len(regeneration["documents"]) * hidden * 32


def released_copy(fixture: ReferenceFixture, case: dict[str, Any], folder: Path,
                  change: dict[str, torch.Tensor | None], retriever_hidden: int) -> Path:
    """The case's checkpoint rewritten as safetensors, with projector tensors changed (None:
    dropped) and ``retriever_hidden_size`` set."""
    from safetensors.torch import save_file

    source = fixture.path / case["checkpoint"]
    weights = set(weight_files(str(source)).values())
    shutil.copytree(source, folder, ignore=lambda _, names: [n for n in names
                                                             if source / n in weights])
    state: dict[str, torch.Tensor] = {}
    for path in weights:
        state.update(read_tensors(path))
    for name, tensor in change.items():
        if tensor is None:
            state.pop(name)
        else:
            state[name] = tensor
    save_file({name: tensor.contiguous() for name, tensor in state.items()},
              str(folder / "model.safetensors"), metadata={"format": "pt"})
    config = json.loads((folder / "config.json").read_text())
    config["retriever_hidden_size"] = retriever_hidden
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_a_safetensors_checkpoint_for_another_retriever_is_refused(
        fixture: ReferenceFixture, tmp_path: Path) -> None:
    case = first_case(fixture, "qa")
    hidden = int(fixture.tensors[f"{case['id']}.projected"].shape[1])
    narrow = torch.zeros(hidden, 8)
    folder = released_copy(fixture, case, tmp_path / "narrow",
                           {"projector.projector.0.weight": narrow}, 8)
    with pytest.raises(XragCheckpointError, match="reads embeddings of 8 values"):
        build_compressor(METHOD, load_target(folder), compressor_options(case))


def test_a_checkpoint_without_a_projector_tensor_is_refused_naming_it(
        fixture: ReferenceFixture, tmp_path: Path) -> None:
    case = first_case(fixture, "qa")
    retriever_hidden = int(fixture.tensors[f"{case['id']}.retrieval_embeds"].shape[1])
    folder = released_copy(fixture, case, tmp_path / "partial",
                           {"projector.projector.2.bias": None}, retriever_hidden)
    with pytest.raises(XragCheckpointError, match=r"missing: projector\.projector\.2\.bias"):
        build_compressor(METHOD, load_target(folder), compressor_options(case))


def test_a_target_without_the_xrag_token_is_refused(fixture: ReferenceFixture) -> None:
    case = first_case(fixture, "qa")
    target = load_target(retriever_dir(case))
    options = {**compressor_options(case), "checkpoint": str(fixture.path / case["checkpoint"])}
    with pytest.raises(InputError, match="no <xRAG> token"):
        build_compressor(METHOD, target, options)
