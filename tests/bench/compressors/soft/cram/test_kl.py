"""``cram`` with ``objective=kl`` on the real pretrained tiny Llama (stories260K)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from bench.compressors import CompressionRequest, build_compressor, capabilities_of
from bench.compressors._api import TargetModel
from bench.records import CompressedEmbeddings

TEXT = ("Lily saw a big red ball in the park. She wanted to play with it, so she ran fast. "
        "Then she fell down and cried.")
QUESTION = "What did Lily see in the park?"
CONTINUATION = 24


def greedy(model: torch.nn.Module, ids: list[int], count: int, eos: int) -> list[int]:
    new: list[int] = []
    with torch.no_grad():
        for _ in range(count):
            token = int(model(torch.tensor([ids + new])).logits[0, -1].argmax())
            new.append(token)
            if token == eos:
                break
    return new


def kl_to_full_context(target: TargetModel, vectors: torch.Tensor, probe: str = "") -> float:
    """Mean KL(model | BOS + text + probe || model | vectors + probe) over the model's greedy
    continuation, computed here from the model alone."""
    model = target.model
    assert model is not None
    tokenizer = target.tokenizer
    probe_ids = tokenizer(probe, add_special_tokens=False)["input_ids"] if probe else []
    prefix = [tokenizer.bos_token_id, *tokenizer(TEXT, add_special_tokens=False)["input_ids"],
              *probe_ids]
    count = 8 if probe else CONTINUATION
    targets = greedy(model, prefix, count, tokenizer.eos_token_id)
    with torch.no_grad():
        teacher_logits = model(torch.tensor([prefix + targets[:-1]])).logits[0]
        teacher = torch.log_softmax(teacher_logits[len(prefix) - 1:], dim=-1)
        embeds = model.get_input_embeddings()(torch.tensor(probe_ids + targets[:-1]))
        full = torch.cat([vectors, embeds])[None]
        start = vectors.shape[0] + len(probe_ids) - 1
        student = torch.log_softmax(model(inputs_embeds=full).logits[0, start:], dim=-1)
    return float((teacher.exp() * (teacher - student)).sum(dim=-1).mean())


def test_kl_objective_lowers_the_kl_to_the_full_context(
        load_target: Callable[[str], TargetModel]) -> None:
    target = load_target("stories")
    cram = build_compressor("cram", target, {"objective": "kl", "num_mem": 4, "steps": 60,
                                             "kl_tokens": CONTINUATION})
    (record,) = cram.compress([CompressionRequest(TEXT)])
    assert isinstance(record, CompressedEmbeddings)
    extra = record.extra
    assert extra["objective"] == "kl" and extra["kl"] == extra["loss"]
    assert extra["kl"] < 0.5 * extra["kl_initial"]
    assert kl_to_full_context(target, record.embeddings) == pytest.approx(extra["kl"], rel=1e-3)
    assert 0 < extra["steps"] <= 60 and record.stats.compressed_tokens == 4


def test_probe_questions_are_matched_too(load_target: Callable[[str], TargetModel]) -> None:
    target = load_target("stories")
    cram = build_compressor("cram", target, {"objective": "kl", "num_mem": 2, "steps": 30,
                                             "kl_tokens": 0, "probes": "question"})
    assert capabilities_of("cram").uses_question(cram.settings()) is True
    (record,) = cram.compress([CompressionRequest(TEXT, QUESTION)])
    assert isinstance(record, CompressedEmbeddings)
    probe = f" Question: {QUESTION} Answer:"
    measured = kl_to_full_context(target, record.embeddings, probe)
    assert measured == pytest.approx(record.extra["kl"], rel=1e-3)
    assert record.extra["kl"] < record.extra["kl_initial"]


def test_a_probe_file_gives_one_view_per_question(
        load_target: Callable[[str], TargetModel], tmp_path: Path) -> None:
    target = load_target("stories")
    probes = tmp_path / "probes.txt"
    probes.write_text(f"{QUESTION}\n\nWho cried?\n", encoding="utf-8")
    options = {"objective": "kl", "num_mem": 2, "steps": 0, "kl_tokens": 0,
               "probes": str(probes)}
    (record,) = build_compressor("cram", target, options).compress([CompressionRequest(TEXT)])
    assert isinstance(record, CompressedEmbeddings)
    first = kl_to_full_context(target, record.embeddings, f" Question: {QUESTION} Answer:")
    second = kl_to_full_context(target, record.embeddings, " Question: Who cried? Answer:")
    assert record.extra["kl"] == pytest.approx((first + second) / 2, rel=1e-3)


def test_settings_and_bad_options(load_target: Callable[[str], TargetModel],
                                  tmp_path: Path) -> None:
    target = load_target("stories")
    plain = build_compressor("cram", target, {"steps": 1}).settings()
    assert not {"objective", "kl_tokens", "probes", "probe_tokens"} & set(plain)
    kl = build_compressor("cram", target, {"objective": "kl", "steps": 1}).settings()
    assert kl["objective"] == "kl" and kl["probes"] == "none" and kl["kl_tokens"] == 32
    with pytest.raises(ValueError, match="objective='distill' is not one of"):
        build_compressor("cram", target, {"objective": "distill"})
    with pytest.raises(ValueError, match="neither 'none', 'question' nor a file"):
        build_compressor("cram", target, {"objective": "kl", "probes": str(tmp_path / "no")})
    nothing = build_compressor("cram", target, {"objective": "kl", "kl_tokens": 0, "steps": 1})
    with pytest.raises(ValueError, match="nothing to match"):
        nothing.compress([CompressionRequest(TEXT)])


def test_a_batch_gives_each_context_its_own_kl(load_target: Callable[[str], TargetModel]) -> None:
    target = load_target("stories")
    other = "Tom and his dog went to the lake. They saw a fish jump out of the water."
    options = {"objective": "kl", "num_mem": 2, "steps": 10, "kl_tokens": 12}
    batched = build_compressor("cram", target, {**options, "batch_size": 2}).compress(
        [CompressionRequest(TEXT), CompressionRequest(other)])
    (single,) = build_compressor("cram", target, options).compress([CompressionRequest(other)])
    assert batched[1].extra["kl"] == pytest.approx(single.extra["kl"], rel=1e-4)
    assert batched[1].extra["kl_initial"] == pytest.approx(single.extra["kl_initial"], rel=1e-4)
    assert batched[0].extra["kl_initial"] != pytest.approx(single.extra["kl_initial"], rel=1e-2)
