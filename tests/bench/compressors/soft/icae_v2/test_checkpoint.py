"""ICAE v2 checkpoints, options and model behaviour beyond the recorded outputs.

Uses the reference fixture's ``base/`` and fine-tuned checkpoint; broken checkpoints are
modified copies written to ``tmp_path``.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

from bench.compressors._api import CompressionRequest, TargetModel
from bench.compressors.soft.icae_v2.checkpoint import MEMORY_KEY, IcaeV2CheckpointError
from bench.compressors.soft.icae_v2.compressor import IcaeV2, make_icae_v2
from bench.compressors.soft.icae_v2.layout import LossExample
from bench.generation import DecoderPrompt, GenerationSettings
from tests.bench.compressors.soft.icae_v2.test_parity_icae_v2 import load_base
from tests.bench.compressors.soft.reference_fixtures import (
    ReferenceFixture,
    case_ids,
    load_fixture,
)

METHOD = "icae_v2"


@pytest.fixture(scope="module")
def fixture() -> ReferenceFixture:
    return load_fixture(METHOD)


@pytest.fixture(scope="module")
def qa_case(fixture: ReferenceFixture) -> dict[str, Any]:
    return fixture.case(case_ids(METHOD, "qa")[0])


@pytest.fixture()
def target(fixture: ReferenceFixture, qa_case: dict[str, Any]) -> TargetModel:
    return load_base(fixture, qa_case["base_model"])


@pytest.fixture(scope="module")
def tensors(fixture: ReferenceFixture, qa_case: dict[str, Any]) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(fixture.path / qa_case["checkpoint"]))


def lora_names(tensors: dict[str, torch.Tensor]) -> list[str]:
    return sorted(name for name in tensors if ".lora_" in name)


def write(tensors: dict[str, torch.Tensor], path: Path) -> str:
    from safetensors.torch import save_file

    save_file({name: t.contiguous() for name, t in tensors.items()}, str(path))
    return str(path)


def build(target: TargetModel, fixture: ReferenceFixture, case: dict[str, Any],
          **options: Any) -> IcaeV2:
    defaults = {"checkpoint": str(fixture.path / case["checkpoint"]),
                "mean_compression_rate": case["mean_compression_rate"]}
    return make_icae_v2(target, {**defaults, **options})


@pytest.mark.parametrize("which", ["first", "last"])
def test_missing_lora_tensor_is_named(target: TargetModel, tensors: dict[str, torch.Tensor],
                                      tmp_path: Path, which: str) -> None:
    names = lora_names(tensors)
    removed = names[0] if which == "first" else names[-1]
    path = write({n: t for n, t in tensors.items() if n != removed},
                 tmp_path / "broken.safetensors")
    with pytest.raises(IcaeV2CheckpointError, match=f"missing tensor.*{removed}"):
        make_icae_v2(target, {"checkpoint": path})


def test_missing_memory_embedding_is_named(target: TargetModel,
                                           tensors: dict[str, torch.Tensor],
                                           tmp_path: Path) -> None:
    path = write({n: t for n, t in tensors.items() if n != MEMORY_KEY},
                 tmp_path / "broken.safetensors")
    with pytest.raises(IcaeV2CheckpointError, match=MEMORY_KEY):
        make_icae_v2(target, {"checkpoint": path})


@pytest.mark.parametrize("axis", [0, 1])
def test_wrong_lora_shape_is_named(target: TargetModel, tensors: dict[str, torch.Tensor],
                                   tmp_path: Path, axis: int) -> None:
    changed = lora_names(tensors)[-1]
    cut = tensors[changed].narrow(axis, 0, tensors[changed].shape[axis] - 1)
    path = write({**tensors, changed: cut}, tmp_path / "broken.safetensors")
    with pytest.raises(IcaeV2CheckpointError, match=f"do not fit.*{changed}"):
        make_icae_v2(target, {"checkpoint": path})


def test_wrong_memory_width_is_named(target: TargetModel, tensors: dict[str, torch.Tensor],
                                     tmp_path: Path) -> None:
    memory = tensors[MEMORY_KEY]
    path = write({**tensors, MEMORY_KEY: torch.cat([memory, memory[:, :1]], dim=1)},
                 tmp_path / "broken.safetensors")
    with pytest.raises(IcaeV2CheckpointError, match=f"do not fit.*{MEMORY_KEY}"):
        make_icae_v2(target, {"checkpoint": path})


def test_folder_with_one_file_and_extra_tensors(target: TargetModel, fixture: ReferenceFixture,
                                                qa_case: dict[str, Any],
                                                tensors: dict[str, torch.Tensor],
                                                tmp_path: Path) -> None:
    extra = {**tensors, "decoder.model.norm.weight": torch.zeros(3)}
    write(extra, tmp_path / "full_state.safetensors")
    from_folder = build(target, fixture, qa_case, checkpoint=str(tmp_path))
    request = CompressionRequest(qa_case["context"], qa_case["question"])
    expected = fixture.tensors[f"{qa_case['id']}.slots"]
    slots = from_folder.compress([request])[0].embeddings  # type: ignore[union-attr]
    torch.testing.assert_close(slots, expected, atol=fixture.tensor_atol,
                               rtol=fixture.tensor_rtol)
    shutil.copy(tmp_path / "full_state.safetensors", tmp_path / "second.safetensors")
    with pytest.raises(IcaeV2CheckpointError, match="exactly one"):
        make_icae_v2(load_base(fixture, qa_case["base_model"]), {"checkpoint": str(tmp_path)})


def test_explicit_num_mem_or_rank_must_match(target: TargetModel, fixture: ReferenceFixture,
                                             qa_case: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="num_mem"):
        build(target, fixture, qa_case, num_mem=qa_case["num_mem"] + 1)
    with pytest.raises(ValueError, match="lora_r"):
        build(load_base(fixture, qa_case["base_model"]), fixture, qa_case, lora_r=3)


def test_settings_record_checkpoint_and_layout(target: TargetModel, fixture: ReferenceFixture,
                                               qa_case: dict[str, Any],
                                               tensors: dict[str, torch.Tensor]) -> None:
    from bench.substrate.hashing import sha256_file

    compressor = build(target, fixture, qa_case)
    settings = compressor.settings()
    path = fixture.path / qa_case["checkpoint"]
    assert settings["checkpoint"] == str(path)
    assert settings["checkpoint_sha256"] == sha256_file(path)
    assert settings["num_mem"] == qa_case["num_mem"]
    assert settings["lora_r"] == tensors[lora_names(tensors)[0]].shape[0]
    assert settings["mean_compression_rate"] == qa_case["mean_compression_rate"]
    assert settings["mode"] == "finetuned"


def test_decoder_is_the_base_model(target: TargetModel, fixture: ReferenceFixture,
                                   qa_case: dict[str, Any]) -> None:
    ids = torch.tensor([qa_case["context_tokens"]])
    with torch.no_grad():
        before = target.model(input_ids=ids).logits  # type: ignore[misc]
        compressor = build(target, fixture, qa_case)
        compressor.compress([CompressionRequest(qa_case["context"])])
        after = target.model(input_ids=ids).logits  # type: ignore[misc]
        with compressor.model.adapter_enabled():
            adapted = target.model(input_ids=ids).logits  # type: ignore[misc]
    torch.testing.assert_close(after, before, atol=0.0, rtol=0.0)
    assert not torch.allclose(adapted, before, atol=fixture.tensor_atol)


def test_pretrained_mode_prompts_qa_with_ae(target: TargetModel, fixture: ReferenceFixture,
                                            qa_case: dict[str, Any]) -> None:
    compressor = build(target, fixture, qa_case, mode="pretrained")
    prompt = DecoderPrompt(kind="qa", prefix="", suffix="", question=qa_case["question"])
    layout = compressor.decoder_layout(compressor.model.num_mem, prompt)
    assert layout.prefix == () and layout.suffix == (compressor.model.ids.ae,)
    with pytest.raises(ValueError, match="mode must be one of"):
        build(load_base(fixture, qa_case["base_model"]), fixture, qa_case, mode="chat")


def test_qa_prompt_needs_question(target: TargetModel, fixture: ReferenceFixture,
                                  qa_case: dict[str, Any]) -> None:
    compressor = build(target, fixture, qa_case)
    with pytest.raises(ValueError, match="needs the question"):
        compressor.decoder_layout(4, DecoderPrompt(kind="qa", prefix="", suffix=""))


def test_stop_string_cuts_generation(target: TargetModel, fixture: ReferenceFixture,
                                     qa_case: dict[str, Any]) -> None:
    compressor = build(target, fixture, qa_case)
    compressed = compressor.compress([CompressionRequest(qa_case["context"])])[0]
    prompt = DecoderPrompt(kind="qa", prefix="", suffix="", question=qa_case["question"])
    settings = GenerationSettings(max_new_tokens=12)
    ids = list(compressor.generate_ids([(compressed, prompt)], settings)[0].token_ids)

    def decode(tokens: list[int]) -> str:
        return str(compressor.target.tokenizer.decode(tokens))

    cut_at = next(j for j in range(1, len(ids) - 1)
                  if (piece := decode(ids[:j + 1])[len(decode(ids[:j])):]).isalpha()
                  and piece not in decode(ids[:j]))
    stop = decode(ids[:cut_at + 1])[len(decode(ids[:cut_at])):]
    cut = compressor.generate([(compressed, prompt)],
                              GenerationSettings(max_new_tokens=12, until=(stop,)))[0]
    assert cut.text == decode(ids[:cut_at])
    assert cut.generated_tokens == cut_at + 1


def test_context_longer_than_max_tokens_is_cut(target: TargetModel, fixture: ReferenceFixture,
                                               qa_case: dict[str, Any]) -> None:
    limit = len(qa_case["context_tokens"]) // 2
    compressor = build(target, fixture, qa_case, max_context_tokens=limit)
    assert compressor.encoder_ids(qa_case["context"]) == qa_case["context_tokens"][:limit]
    result = compressor.compress([CompressionRequest(qa_case["context"])])[0]
    assert result.extra["encoder_tokens"] == limit and result.extra["truncated"] is True


def test_loss_trains_lora_and_memory(target: TargetModel, fixture: ReferenceFixture,
                                     qa_case: dict[str, Any]) -> None:
    recorded = fixture.losses["cases"][qa_case["id"]]
    compressor = build(target, fixture, qa_case)
    example = LossExample(tuple(recorded["input_ids"]), tuple(recorded["prompt_answer_ids"]),
                          tuple(recorded["labels"]))
    compressor.model.loss(example).backward()  # type: ignore[no-untyped-call]
    params = compressor.model.trainable_parameters()
    assert sum(".lora_" in name for name in params) == len(lora_names(compressor.model.base
                                                                      .state_dict()))
    for name, param in params.items():
        assert param.grad is not None and bool(param.grad.abs().sum() > 0), name
