"""The information-flow benchmark on the real tiny Llama: a few training steps per method."""

from __future__ import annotations

import json
import math
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import torch

from bench.compressors.soft.encoder.training import soft_parts
from bench.compressors.soft.five_hundred_x.compressor import KVSoftModel
from bench.training import registry
from bench.training.method import MethodParts
from bench.training.registry import TrainingMethod
from tests.benchmarks.conftest import load_script
from tests.conftest import REPO_ROOT

flow = load_script("bench_information_flow")

TINY = REPO_ROOT.parent / "shared" / "data" / "stories260K_hf"
needs_tiny = pytest.mark.skipif(not TINY.is_dir(), reason="../shared/data/stories260K_hf absent")
LENGTH = 12
STORIES = [
    "Tom had a red ball. He liked to throw it high in the sky every day.",
    "Lily saw a big dog in the park. The dog was brown and very happy to play.",
    "The sun was hot, so Sue went to the lake to swim with her little brother.",
    "Ben found a shiny rock under a tree. He gave it to his mom as a gift.",
    "A small bird sat on the fence and sang a song for the sleepy cat below.",
    "Mia baked a cake with her dad. It was sweet and they ate it after lunch.",
    "The old man walked to the shop to buy milk, bread and a bag of apples.",
    "Max and Zoe built a tall tower of blocks, but the wind knocked it down.",
    "One day a frog jumped into the pond and made a big splash near the duck.",
    "Anna lost her hat at school. Her friend Sam helped her look for it.",
    "The kind girl shared her toys with the new boy, and they became friends.",
]


def _texts_file(folder: Path) -> Path:
    path = folder / "texts.jsonl"
    path.write_text("".join(json.dumps({"text": story}) + "\n" for story in STORIES), "utf-8")
    return path


def _run(tmp_path: Path, methods: list[str], steps: list[str], *more: str) -> dict[str, Any]:
    out = tmp_path / "flow.json"
    argv = ["--base", str(TINY), "--texts", str(_texts_file(tmp_path)), "--method", *methods,
            "--steps", *steps, "--train-texts", "8", "--held-out", "3",
            "--context-length", str(LENGTH), "--lr", "1e-2", "--retriever", str(TINY),
            "--json", str(out), *more]
    assert flow.main(argv) == 0
    result: dict[str, Any] = json.loads(out.read_text("utf-8"))
    return result


def _held_out() -> list[str]:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(TINY)
    texts = [flow.cut_text(tokenizer, story, LENGTH)[0] for story in STORIES]
    return flow.split_texts(texts, 3, 0)[1]  # type: ignore[no-any-return]


def _frozen_base_losses(texts: list[str]) -> list[float]:
    """Each text's summed loss (its ids and EOS) read by the base model after BOS alone."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(TINY)
    model = AutoModelForCausalLM.from_pretrained(TINY).eval()  # type: ignore[no-untyped-call]
    losses = []
    for text in texts:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"][:LENGTH]
        targets = torch.tensor([*ids, tokenizer.eos_token_id])
        inputs = torch.tensor([[tokenizer.bos_token_id, *ids]])
        with torch.no_grad():
            logits = model(input_ids=inputs).logits[0]
        losses.append(float(torch.nn.functional.cross_entropy(logits, targets, reduction="sum")))
    return losses


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def _check_summary(row: dict[str, Any], texts: list[str]) -> None:
    """The summary figures are those of the per-text scores and regenerations."""
    from bench.metrics import bleu, rouge_l_f

    per_text = row["per_text"]
    for name in ("own", "other", "none", "step0"):
        scores = per_text[name]
        assert row[name] == sum(s["nats"] for s in scores) / sum(s["tokens"] for s in scores)
        assert [s["tokens"] for s in scores] == [s["tokens"] for s in per_text["own"]]
    pairs = list(zip(per_text["own"], per_text["other"], strict=True))
    assert row["own_beats_other"] == sum(own["nats"] < other["nats"] for own, other in pairs)
    saved = [(other["nats"] - own["nats"]) / math.log(2) for own, other in pairs]
    assert row["bits_per_text"] == pytest.approx(_mean(saved), rel=1e-12)
    regenerated = list(zip(row["regenerations"], texts, strict=True))
    assert row["bleu"] == pytest.approx(_mean([bleu(p, t) for p, t in regenerated]), rel=1e-12)
    assert row["rouge_l_f"] == pytest.approx(_mean([rouge_l_f(p, t) for p, t in regenerated]),
                                             rel=1e-12)


@needs_tiny
def test_500x_controls_read_the_right_memory_and_targets(tmp_path, capsys):
    (row,) = _run(tmp_path, ["500x"], ["1"])["rows"]
    texts = _held_out()
    _check_summary(row, texts)
    per_text = row["per_text"]
    none = [s["nats"] for s in per_text["none"]]
    assert none == pytest.approx(_frozen_base_losses(texts), rel=1e-5)
    own, other, step0 = ([s["nats"] for s in per_text[name]]
                         for name in ("own", "other", "step0"))
    # another text's memory, not its own; the trained compressor, not the step-0 one
    assert all(o != x for o, x in zip(own, other, strict=True))
    assert all(o != s for o, s in zip(own, step0, strict=True))
    printed = capsys.readouterr().out
    assert f"{row['own_beats_other']}/3" in printed and "500x" in printed


def _summed_loss(logits: torch.Tensor, labels: list[int]) -> float:
    """Summed cross-entropy of each position's logits against the next label (-100: none)."""
    return float(torch.nn.functional.cross_entropy(
        logits[:-1].float(), torch.tensor(labels[1:]), ignore_index=-100, reduction="sum"))


@torch.no_grad()
def _bos_only(model: Any, bos: int, labels: list[int]) -> float:
    """The loss of the targets among ``labels`` read by ``model`` after ``bos`` alone."""
    targets = [label for label in labels[1:] if label != -100]
    logits = model(input_ids=torch.tensor([[bos, *targets]])).logits[0]
    return _summed_loss(logits, [-100, *targets])


def _compressor(name: str, target: Path, options: dict[str, Any]) -> Any:
    """The method's compressor on ``target`` (loaded as the harness loads ``pretrained=``)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from bench.compressors import TargetModel, build_compressor

    model = AutoModelForCausalLM.from_pretrained(target).eval()  # type: ignore[no-untyped-call]
    return build_compressor(name, TargetModel(str(target), AutoTokenizer.from_pretrained(target),
                                              model), options)


def _vectors(compressor: Any, texts: list[str]) -> list[torch.Tensor]:
    from bench.compressors import CompressionRequest

    compressed = compressor.compress([CompressionRequest(context=text) for text in texts])
    return [item.embeddings for item in compressed]


def _check_controls(row: dict[str, Any], score: Any, none: list[float]) -> None:
    """own and other are ``score(text, memory)`` of the text's own and the next text's
    memory, none is ``none``; the step-0 memory is not the trained one."""
    count = len(none)
    per_text = {name: [s["nats"] for s in row["per_text"][name]]
                for name in ("own", "other", "none", "step0")}
    assert per_text["own"] == pytest.approx([score(i, i) for i in range(count)], rel=1e-5)
    assert per_text["other"] == pytest.approx([score(i, (i + 1) % count) for i in range(count)],
                                              rel=1e-5)
    assert per_text["none"] == pytest.approx(none, rel=1e-5)
    assert all(o != s for o, s in zip(per_text["own"], per_text["step0"], strict=True))


@needs_tiny
def test_xrag_controls_read_the_projected_retriever_embedding_of_the_right_text(tmp_path, capsys):
    from bench.compressors.soft.xrag.prompts import pretraining_example
    from bench.compressors.soft.xrag.training import MAX_SEQ_LENGTH, seeded_instruction

    (row,) = _run(tmp_path, ["xrag"], ["1"], "--out", str(tmp_path / "work"))["rows"]
    texts = _held_out()
    _check_summary(row, texts)
    compressor = _compressor("xrag", tmp_path / "work" / "run-xrag" / "final",
                             {"retriever": str(TINY)})
    vectors, model = _vectors(compressor, texts), compressor.model
    tokenizer = compressor.target.tokenizer
    rows = [pretraining_example(tokenizer, text, seeded_instruction(0, text),
                                MAX_SEQ_LENGTH["pretrain"]) for text in texts]

    @torch.no_grad()
    def score(text: int, memory: int) -> float:
        ids = torch.tensor(rows[text].input_ids)
        embeds = model.get_input_embeddings()(ids)
        embeds[ids == compressor.xrag_id] = vectors[memory]
        return _summed_loss(model(inputs_embeds=embeds[None]).logits[0], list(rows[text].labels))

    none = [_bos_only(model, tokenizer.bos_token_id, list(r.labels)) for r in rows]
    _check_controls(row, score, none)
    printed = capsys.readouterr().out
    assert f"{row['own_beats_other']}/3" in printed and "xrag" in printed


@needs_tiny
def test_pisco_controls_read_the_memory_vectors_of_the_right_text(tmp_path, capsys):
    from bench.compressors.soft.pisco.layout import regeneration_text

    (row,) = _run(tmp_path, ["pisco"], ["1"], "--out", str(tmp_path / "work"))["rows"]
    texts = _held_out()
    _check_summary(row, texts)
    compressor = _compressor("pisco", TINY,
                             {"checkpoint": str(tmp_path / "work" / "run-pisco" / "final")})
    vectors, model = _vectors(compressor, texts), compressor.model
    tokens = compressor.parts.decoder_tokenizer

    def decoder_ids(text: int, memory: int) -> torch.Tensor:
        layout = regeneration_text(len(vectors[memory]), tokens.bos_text, tokens.eos_text,
                                   texts[text])
        return torch.tensor([tokens.encode(layout, special_tokens=False)])

    @torch.no_grad()
    def score(text: int, memory: int) -> float:
        ids = decoder_ids(text, memory)
        embeds = model.decoder_embeddings(ids, vectors[memory])
        return _summed_loss(model.decoder(inputs_embeds=embeds).logits[0],
                            model.ids.mask_special(ids)[0].tolist())

    none = [_bos_only(model.decoder, model.ids.bos,
                      model.ids.mask_special(decoder_ids(i, i))[0].tolist())
            for i in range(len(texts))]
    _check_controls(row, score, none)
    assert {len(v) for v in vectors} == {4}  # --num-mem 4 (the default) for 12-token texts
    printed = capsys.readouterr().out
    assert f"{row['own_beats_other']}/3" in printed and "pisco" in printed


@pytest.mark.parametrize(("length", "num_mem"), [(12, 4), (64, 8), (9, 4), (48, 2), (5, 6)])
def test_pisco_rate_is_the_largest_that_gives_num_mem_vectors(length, num_mem):
    from bench.compressors.soft.pisco.layout import memory_count

    rate = flow.pisco_rate(length, num_mem)
    assert memory_count(length + 1, rate) >= num_mem > memory_count(length + 1, rate + 1)


@pytest.mark.parametrize("length", [1, 12, 64])
def test_pisco_rate_for_one_vector_is_the_smallest_that_gives_one(length):
    from bench.compressors.soft.pisco.layout import memory_count

    rate = flow.pisco_rate(length, 1)
    assert memory_count(length + 1, rate) == 1 < memory_count(length + 1, rate - 1)


@needs_tiny
@pytest.mark.slow
def test_every_covered_method_runs_and_resumes_to_a_second_budget(tmp_path):
    covered, _ = flow.covered_methods()
    rows = _run(tmp_path, covered, ["1", "2"])["rows"]
    assert [(row["method"], row["steps"]) for row in rows] == [
        (method, steps) for method in covered for steps in (1, 2)]
    texts = _held_out()
    for row in rows:
        _check_summary(row, texts)
    by_method = {row["method"]: row for row in rows if row["steps"] == 2}
    first = {row["method"]: row for row in rows if row["steps"] == 1}
    for method in covered:
        assert by_method[method]["per_text"]["step0"] == first[method]["per_text"]["step0"]
        assert by_method[method]["own"] != first[method]["own"]
    frozen = [s["nats"] for s in by_method["500x"]["per_text"]["none"]]
    assert [s["nats"] for s in by_method["icae"]["per_text"]["none"]] == frozen


def _parts_of_another_kind(config: Any, cuda: bool, inputs: dict[str, Any]) -> MethodParts:
    raise AssertionError("never built")


def test_methods_are_covered_by_name_or_by_their_encoder_training_parts(monkeypatch):
    covered, _ = flow.covered_methods()
    assert {"500x", "icae", "gist", "autocompressor", "xrag", "pisco"} <= set(covered)
    registry.training_methods()
    encoder = TrainingMethod("new-encoder", "test", partial(soft_parts, KVSoftModel))
    other = TrainingMethod("new-other", "test", _parts_of_another_kind)
    monkeypatch.setitem(registry._REGISTRY, encoder.name, encoder)
    monkeypatch.setitem(registry._REGISTRY, other.name, other)
    covered, others = flow.covered_methods()
    assert "new-encoder" in covered and "new-other" in others and "new-other" not in covered


def test_a_method_it_does_not_cover_is_refused_in_one_line(monkeypatch, capsys):
    registry.training_methods()
    other = TrainingMethod("new-other", "test", _parts_of_another_kind)
    monkeypatch.setitem(registry._REGISTRY, other.name, other)
    assert flow.main(["--method", "new-other", "--base", str(TINY)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "'new-other' is not covered" in error


@needs_tiny
def test_autocompressor_reads_the_answer_through_the_text_in_one_backward_pass(tmp_path):
    method = registry.training_methods()["autocompressor"]
    args = flow.parser().parse_args(["--base", str(TINY), "--context-length", str(LENGTH)])
    config = flow.run_config("autocompressor", method, flow.AutoCompressorProbe, args,
                             tmp_path / "data", tmp_path / "out", 2)
    parts = method.parts(config, False, {})
    batch = parts.collate([flow.regeneration_question(STORIES[0])])
    (piece,) = batch.pieces
    collate: Any = parts.collate
    tokenizer = collate.tokenizer
    text_ids = tokenizer(STORIES[0])["input_ids"][:LENGTH]
    assert piece.input_ids[0, :len(text_ids)].tolist() == text_ids
    answer = tokenizer(STORIES[0], add_special_tokens=False)["input_ids"][:LENGTH]
    labels = piece.labels[0, len(text_ids):]
    assert labels[labels != flow.IGNORE].tolist() == [*answer, tokenizer.eos_token_id]
