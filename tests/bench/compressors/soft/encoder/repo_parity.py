"""Parity checks shared by the two fixture sets of the 500xCompressor code: ``500x`` and its
ICAE baseline (``icae_500x_repo``). Every expectation is read from the fixture folder.

Tensor tolerance: the fixture's ``atol``, or the fp32 rounding error of the same computation
when that is larger. The reference ran in fp32 on another CPU; two fp32 runs of one formula
differ by up to their rounding error, which this measures as the distance between our fp32
result and the same encoder pass in float64 (the LoRA weights of these checkpoints are large,
so it reaches a few 1e-5 here). A layout error moves the tensors by far more. The measured
floor may widen the ``atol`` at most :data:`FLOOR_CAP` times: a larger one means our own pass
is perturbed (e.g. dropout on), which would otherwise widen the tolerance until anything passes.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch

from bench.compressors import CompressionRequest, build_compressor
from bench.compressors._api import TargetModel
from bench.compressors.soft.decode import prepare_batch
from bench.compressors.soft.encoder.compressor import SoftCompressor
from bench.compressors.soft.encoder.encoder import EncoderOutput
from bench.generation import DecoderPrompt, GenerationSettings
from bench.records import CompressedEmbeddings, CompressedKV
from bench.training.example import Example
from tests.bench.compressors.soft.forced_logits import token_forced_at
from tests.bench.compressors.soft.reference_fixtures import (
    ReferenceFixture,
    fixture_file,
    load_fixture,
    require_stories_dir,
)

FLOOR_CAP = 10

METHODS: dict[str, tuple[str, dict[str, str]]] = {
    "500x": ("500x", {}),
    "icae_500x_repo": ("icae", {"variant": "500x-baseline"}),
}


def loss_case_ids(folder: str) -> list[str]:
    """Case ids of ``losses.json`` (see :func:`.reference_fixtures.fixture_file`)."""
    path = fixture_file(folder, "losses.json")
    if path is None:
        return []
    return list(json.loads(path.read_text("utf-8"))["cases"])


def stories_target(dtype: torch.dtype = torch.float32) -> TargetModel:
    """A fresh copy of the tiny Llama the fixtures were made with."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = require_stories_dir()
    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype).eval()  # type: ignore[no-untyped-call]
    return TargetModel(path.name, AutoTokenizer.from_pretrained(str(path)), model)


def case_options(fixture: ReferenceFixture, case: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """Compressor options that reproduce ``case``: its checkpoint, padded length, truncation."""
    _, variant = METHODS[fixture.path.name]
    return {**variant, "checkpoint": str(fixture.path / case["checkpoint"]),
            "context_length": case["context_len"],
            "max_context_tokens": case["truncation_max_length"], **extra}


def build_for_case(folder: str, case_id: str, dtype: torch.dtype = torch.float32
                   ) -> tuple[ReferenceFixture, dict[str, Any], SoftCompressor]:
    fixture = load_fixture(folder)
    case = fixture.case(case_id)
    method, _ = METHODS[folder]
    compressor = build_compressor(method, stories_target(dtype), case_options(fixture, case))
    assert isinstance(compressor, SoftCompressor)
    return fixture, case, compressor


def prompt_of(case: dict[str, Any]) -> DecoderPrompt:
    return DecoderPrompt(case["kind"], "", "", question=case.get("question"))


def check_encoder_ids(folder: str, case_id: str) -> None:
    """Our tokenizer path builds the ids the reference encoder saw."""
    _, case, compressor = build_for_case(folder, case_id)
    tokens = compressor.target.tokenizer(case["context"], add_special_tokens=False)["input_ids"]
    assert tokens[:case["truncation_max_length"]] == case["context_tokens"]
    assert compressor.model.encoder_ids(case["context"]) == case["encoder_input_ids"]
    assert len(case["encoder_input_ids"]) == case["context_len"]


def _stacked(memory: EncoderOutput | CompressedKV | CompressedEmbeddings, folder: str
             ) -> torch.Tensor:
    if isinstance(memory, CompressedEmbeddings):
        return memory.embeddings
    if isinstance(memory, CompressedKV):
        return torch.stack([*memory.keys, *memory.values])
    if folder == "500x":
        return torch.stack([*memory.keys, *memory.values])[:, 0]
    return memory.hidden[0]


def _expected(fixture: ReferenceFixture, case_id: str, layers: int) -> torch.Tensor:
    tensors = fixture.tensors
    if fixture.path.name == "500x":
        parts = [tensors[f"{case_id}.layer{i}.{kind}"][0]
                 for kind in ("key", "value") for i in range(layers)]
        return torch.stack(parts)
    slots: torch.Tensor = tensors[f"{case_id}.slots"][0]
    return slots


def fp32_rounding(folder: str, case: dict[str, Any], ours: torch.Tensor) -> float:
    """How far our fp32 tensor is from the same encoder pass in float64."""
    _, _, exact = build_for_case(folder, case["id"], torch.float64)
    with torch.no_grad():
        memory = exact.model.encode_ids([case["encoder_input_ids"]])
    return float((ours.double() - _stacked(memory, folder).double()).abs().max())


def tensor_tolerance(atol: float, fp32_floor: float) -> float:
    """The tensor tolerance: ``atol`` widened to the measured fp32 floor, up to the cap."""
    assert fp32_floor <= FLOOR_CAP * atol, (
        f"our fp32 and float64 encoder passes differ by {fp32_floor:.3g}, more than "
        f"{FLOOR_CAP}x the fixture's atol {atol:g}: the pass is perturbed (dropout on?)")
    return max(atol, fp32_floor)


def check_compressed_tensors(folder: str, case_id: str) -> float:
    """Compressed tensors and memory positions of both the recorded ids and the tokenizer
    path; returns the max |diff| to the fixture."""
    fixture, case, compressor = build_for_case(folder, case_id)
    layers = compressor.model.base.config.num_hidden_layers
    expected = _expected(fixture, case_id, layers)
    with torch.no_grad():
        from_ids = _stacked(compressor.model.encode_ids([case["encoder_input_ids"]]), folder)
    (record,) = compressor.compress([CompressionRequest(case["context"])])
    from_text = _stacked(record, folder)  # type: ignore[arg-type]
    tolerance = tensor_tolerance(fixture.tensor_atol, fp32_rounding(folder, case, from_ids))
    for ours in (from_ids, from_text):
        torch.testing.assert_close(ours, expected, atol=tolerance, rtol=fixture.tensor_rtol)
    positions = fixture.tensors[f"{case_id}.memory_positions"].tolist()
    assert record.extra["memory_positions"] == positions == case["memory_positions"]
    return float((from_text - expected).abs().max())


def check_decoder_input(folder: str, case_id: str) -> None:
    """The decoder's first pass: memory, prompt (ids or AE embedding) and positions."""
    fixture, case, compressor = build_for_case(folder, case_id)
    (record,) = compressor.compress([CompressionRequest(case["context"])])
    item = compressor.decoder_item(record, prompt_of(case))
    fed = prepare_batch(compressor.model.base, [item]).position_ids[0].tolist()
    start = case["decoder_start_position"]
    assert fixture.tensors[f"{case_id}.decoder_start_position"].tolist() == [start]
    k = case["num_mem"]
    if isinstance(record, CompressedKV):
        assert item.memory_length == k and record.position_offset == start
        assert list(item.prompt_ids) == case["decoder_prompt_ids"]
        assert fed == list(range(start, start + len(item.prompt_ids)))
        return
    assert isinstance(record, CompressedEmbeddings) and item.embeds is not None
    memory_positions = case["decoder_memory_positions"]
    assert fixture.tensors[f"{case_id}.decoder_memory_positions"].tolist() == memory_positions
    assert torch.equal(item.embeds[:k], record.embeddings)
    if case["decoder_prompt"] == "ae":
        stored = torch.load(fixture.path / case["checkpoint"], weights_only=True)
        assert item.prompt_ids == () and torch.equal(item.embeds[k:], stored["ae_embedding"][0])
    else:
        assert item.embeds.shape[0] == k
        assert list(item.prompt_ids) == case["decoder_prompt_ids"]
    assert fed[:k] == memory_positions
    assert fed[k:] == list(range(start, start + item.input_length - k))


def check_greedy_tokens(folder: str, case_id: str) -> None:
    """compress + generate gives the reference's greedy ids and its returned text."""
    _, case, compressor = build_for_case(folder, case_id)
    (record,) = compressor.compress([CompressionRequest(case["context"])])
    settings = GenerationSettings(max_new_tokens=case["max_new_tokens"])
    items = [(record, prompt_of(case))]
    assert compressor.generate_token_ids(items, settings) == [case["expected_token_ids"]]
    (output,) = compressor.generate(items, settings)  # type: ignore[attr-defined]
    assert output.text == case["reference_predict_text"]
    stopped = case["expected_token_ids"][-1:] == [case["eos_token_id"]]
    assert stopped == case["stopped_at_eos"]


def greedy_with_forced_token(compressor: SoftCompressor, case: dict[str, Any], token: int,
                             step: int) -> tuple[list[int], str]:
    """Greedy ids (stopping EOS included) and text of ``case`` when the decoder picks
    ``token`` at generation step ``step``."""
    (record,) = compressor.compress([CompressionRequest(case["context"])])
    settings = GenerationSettings(max_new_tokens=case["max_new_tokens"])
    items = [(record, prompt_of(case))]
    with token_forced_at(compressor.model.base, token, step):
        (ids,) = compressor.generate_token_ids(items, settings)
    with token_forced_at(compressor.model.base, token, step):
        (output,) = compressor.generate(items, settings)  # type: ignore[attr-defined]
    return ids, output.text


def _example(case: dict[str, Any]) -> Example:
    if case["kind"] == "qa":
        return Example(case["context"], "qa", case["answer"], case["question"])
    return Example(case["context"], "regeneration", case["context"])


def check_training_loss(folder: str, case_id: str) -> float:
    """Training ids and the loss of ``SoftModel.loss``; returns |loss - reference|."""
    fixture, case, compressor = build_for_case(folder, case_id)
    recorded = fixture.losses["cases"][case_id]
    assert recorded["checkpoint"] == case["checkpoint"]
    model = compressor.model
    if case["kind"] == "qa":
        model.layout = replace(model.layout, max_qa_len=len(recorded["decoder_input_ids"]))
    rows = model.training_ids(_example(case))
    assert rows.encoder_ids == recorded["encoder_input_ids"]
    assert rows.labels == recorded["dataset_labels"]
    assert rows.decoder_ids == recorded["decoder_input_ids"]
    if case["kind"] == "qa":
        assert recorded["dataset_input_ids"] == rows.encoder_ids + rows.decoder_ids
    else:
        assert recorded["dataset_input_ids"] == rows.encoder_ids
    assert sum(label != -100 for label in rows.labels) == recorded["num_targets"]
    with torch.no_grad():
        loss = float(model.loss([_example(case)]))
    assert loss == pytest.approx(recorded["loss"], abs=fixture.loss_atol)
    return abs(loss - float(recorded["loss"]))


def check_targets_example(folder: str) -> None:
    """The label vectors of ``targets_example``: targets and where they sit in the logits."""
    fixture = load_fixture(folder)
    for kind, example in fixture.losses["targets_example"].items():
        _, case, compressor = build_for_case(folder, example["id"])
        model = compressor.model
        recorded = fixture.losses["cases"][example["id"]]
        if kind == "qa":
            model.layout = replace(model.layout, max_qa_len=len(recorded["decoder_input_ids"]))
        labels = model.training_ids(_example(case)).labels
        assert labels == example["labels"]
        positions = [i for i, label in enumerate(labels) if label != -100]
        assert positions == example["positions_of_targets_in_decoder_logits"]
        assert [labels[i] for i in positions] == example["non_ignored_targets"]


def check_loader_reads_reference_files(folder: str) -> None:
    """Every stored tensor lands in the model; settings name the format and the file's hash."""
    fixture = load_fixture(folder)
    for file in sorted({case["checkpoint"] for case in fixture.cases}):
        case = next(c for c in fixture.cases if c["checkpoint"] == file)
        _, _, compressor = build_for_case(folder, case["id"])
        stored = torch.load(fixture.path / file, map_location="cpu", weights_only=True)
        parameters = dict(compressor.model.encoder.peft_model.named_parameters())
        lora = {key: value for key, value in stored.items() if ".lora_" in key}
        assert lora and len(lora) == sum("lora_" in name for name in parameters)
        for key, value in lora.items():
            assert torch.equal(parameters[key.removeprefix("llama.")], value), key
        assert torch.equal(compressor.model.encoder.memory, stored["memory_embeddings"][0])
        if "ae_embedding" in stored:
            trigger = compressor.model.encoder.trigger
            assert trigger is not None and torch.equal(trigger, stored["ae_embedding"][0])
        settings = compressor.settings()
        digest = hashlib.sha256((fixture.path / file).read_bytes()).hexdigest()
        assert settings["checkpoint_format"] == "500x-repo"
        assert settings["checkpoint_sha256"] == digest
        rank = next(v for k, v in stored.items() if "lora_A" in k).shape[0]
        assert settings["lora_r"] == rank
        assert settings["num_mem"] == stored["memory_embeddings"].shape[1] == case["num_mem"]


def damaged_copy(fixture: ReferenceFixture, case: dict[str, Any], tmp_path: Path,
                 damage: str) -> tuple[Path, str]:
    """A copy of the case's checkpoint with one LoRA tensor (or the memory) removed or cut."""
    stored = torch.load(fixture.path / case["checkpoint"], map_location="cpu", weights_only=True)
    lora = sorted(key for key in stored if ".lora_B." in key)
    victim = "memory_embeddings" if damage == "drop_memory" else lora[len(lora) // 2]
    if damage == "reshape":
        stored[victim] = stored[victim][:, :-1].clone()
    else:
        del stored[victim]
    path = tmp_path / "pytorch_model.bin"
    torch.save(stored, path)
    return path, victim


def check_targets_without_padding(folder: str, case_id: str) -> None:
    """``loss_on_padding=False``: the reference targets up to the first EOS pad, then none."""
    fixture, case, compressor = build_for_case(folder, case_id)
    recorded = fixture.losses["cases"][case_id]["dataset_labels"]
    model = compressor.model
    model.layout = replace(model.layout, loss_on_padding=False)
    labels = model.training_ids(_example(case)).labels
    tokens = compressor.target.tokenizer(case["context"], add_special_tokens=False)["input_ids"]
    first = next(i for i, label in enumerate(recorded) if label != -100)
    end = first + len(tokens[:case["context_len"]]) + 1
    assert labels[:end] == recorded[:end] and labels[end - 1] == case["eos_token_id"]
    assert labels[end:] == [-100] * (len(recorded) - end)
