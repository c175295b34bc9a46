"""Every training method on a base whose output embedding is its input embedding
(``tie_word_embeddings``): a run killed with SIGKILL resumes to the weights of an
uninterrupted one, and its export, loaded through the method's compressor, gives what the
trained model in memory gives."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from bench.compressors import CompressionRequest, build_compressor
from bench.compressors._api import TargetModel
from bench.generation import DecoderPrompt, GenerationSettings
from bench.records import CompressedContext, CompressedEmbeddings, CompressedKV
from bench.training import loop
from bench.training.config import TrainConfig
from bench.training.method import MethodParts
from bench.training.strategy import trained_names

STEPS, SAVE_EVERY = 4, 2
TEXT = "Lily had 7 red balls. She gave 1 of them to Tom."
# Merging LoRA into the exported LM (--lora) rounds in float32.
MERGED_ATOL = 1e-4


def _config(method: str, base: Path, data: Path, out: Path, **overrides: Any) -> TrainConfig:
    values: dict[str, Any] = {
        "stage": "pretrain", "method": method, "base": str(base), "data": str(data),
        "out": str(out), "num_mem": 2, "steps": STEPS, "save_every": SAVE_EVERY, "lr": 1e-3,
        "batch_size": 2, "warmup_steps": 1, "eval_every": 0, "dev_size": 4,
        "max_context_tokens": 32, "context_length": 32, "lora_r": 4, "lora_alpha": 8,
        "lora_dropout": 0.0, "max_answer_tokens": 8, "training_substeps": 1,
        "segments_per_substep": 1, "progress": False, **overrides}
    return TrainConfig(**values)


@pytest.fixture()
def captured_parts(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[MethodParts]]:
    """The parts of each run trained while the fixture is active (the model in memory)."""
    from bench.training.registry import method_parts as build

    seen: list[MethodParts] = []

    def keep(config: TrainConfig, cuda: bool, inputs: dict[str, Any]) -> MethodParts:
        seen.append(build(config, cuda, inputs))
        return seen[-1]

    monkeypatch.setattr("bench.training.loop.method_parts", keep)
    yield seen


def _killed_at_step(step: int, config: TrainConfig) -> None:
    """Run ``config`` in a forked child that SIGKILLs itself as optimizer step ``step``
    begins (no exception handler, no clean-up runs)."""
    pid = os.fork()
    if pid == 0:
        try:
            calls = iter(range(1, step + 1))
            take_step = loop.train_step

            def step_or_die(*args: Any) -> Any:
                if next(calls) == step:
                    os.kill(os.getpid(), signal.SIGKILL)
                return take_step(*args)

            loop.train_step = step_or_die  # type: ignore[assignment]
            loop.train(config)
        finally:
            os._exit(70)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, status


@pytest.mark.parametrize(("method", "lora"), [
    ("500x", False), ("icae", False), ("gist", False), ("autocompressor", False),
    pytest.param("gist", True, id="gist-lora"),
    pytest.param("autocompressor", True, id="autocompressor-lora", marks=pytest.mark.slow)])
def test_a_killed_run_on_a_tied_base_resumes_and_exports_what_it_trained(
        method: str, lora: bool, tied_stories: Path, small_corpus: Path, tmp_path: Path,
        captured_parts: list[MethodParts]) -> None:
    settings = {"lora": True} if lora else {}
    straight = loop.train(_config(method, tied_stories, small_corpus, tmp_path / "a",
                                  **settings))
    killed = _config(method, tied_stories, small_corpus, tmp_path / "b", **settings)
    _killed_at_step(SAVE_EVERY + 2, killed)
    assert not (tmp_path / "b" / "final").exists()
    assert (tmp_path / "b" / f"checkpoint-{SAVE_EVERY:07d}").is_dir()
    resumed = loop.train(killed)
    assert resumed.step == STEPS and len(resumed.losses) == STEPS - SAVE_EVERY
    assert resumed.losses == straight.losses[SAVE_EVERY:]
    assert _same_files(straight.final_dir, resumed.final_dir)
    in_memory = captured_parts[-1]
    _check_tied(in_memory, resumed.final_dir)
    exported, trained = _compressors(method, in_memory, resumed.final_dir, tied_stories)
    _check_same_outputs(exported, trained, MERGED_ATOL if lora else 0.0)
    if method == "autocompressor":  # the export segments contexts as the run's training did
        assert exported.settings()["segment_length"] == 32


def _same_files(a: Path, b: Path) -> bool:
    """The exports hold the same tensors (the configs differ in the output folder)."""
    from safetensors.torch import load_file

    names = sorted(p.name for p in a.glob("*.safetensors"))
    assert names and names == sorted(p.name for p in b.glob("*.safetensors"))
    for name in names:
        first, second = load_file(str(a / name)), load_file(str(b / name))
        assert first.keys() == second.keys()
        for key in first:
            assert torch.equal(first[key], second[key]), (name, key)
    return True


def _check_tied(parts: MethodParts, final: Path) -> None:
    """The trained model still ties its embeddings (so does an exported LM), and the tied
    tensor is trained under one name only."""
    base = parts.base
    tied = base.get_output_embeddings().weight is base.get_input_embeddings().weight
    assert tied, "training untied the embeddings"
    names = trained_names(parts.module)
    assert not [name for name in names if name.endswith("lm_head.weight")], names
    exported = final / "config.json"
    if exported.is_file():
        assert json.loads(exported.read_text())["tie_word_embeddings"] is True


Loaded = Any  # a compressor that is also a SoftDecoder


def _compressors(method: str, parts: MethodParts, final: Path, base: Path
                 ) -> tuple[Loaded, Loaded]:
    """The compressor loading the export, and the same compressor on the model in memory."""
    return _LOADERS[method](parts, final, base)


def _fresh_target(folder: Path) -> TargetModel:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(folder)).eval()  # type: ignore[no-untyped-call]
    return TargetModel(folder.name, AutoTokenizer.from_pretrained(str(folder)), model)


def _encoder_method(name: str, options: dict[str, Any]
                    ) -> Callable[[MethodParts, Path, Path], tuple[Loaded, Loaded]]:
    def load(parts: MethodParts, final: Path, base: Path) -> tuple[Loaded, Loaded]:
        exported: Any = build_compressor(name, _fresh_target(base),
                                         {**options, "checkpoint": str(final)})
        soft: Any = parts.module.get_submodule("soft").eval()
        target = TargetModel("in memory", soft.tokenizer, soft.base)
        trained = type(exported)(exported.name, target, soft, exported.options)
        return exported, trained

    return load


def _gist(parts: MethodParts, final: Path, base: Path) -> tuple[Loaded, Loaded]:
    options = {"num_gist_tokens": 2}
    exported = build_compressor("gist", _fresh_target(final), options)
    collate: Any = parts.collate
    target = TargetModel("in memory", collate.tokens.tokenizer, parts.base.eval())
    return exported, build_compressor("gist", target, options)


def _autocompressor(parts: MethodParts, final: Path, base: Path) -> tuple[Loaded, Loaded]:
    from bench.compressors.soft.autocompressor.checkpoint import SummarySpec
    from bench.compressors.soft.autocompressor.compressor import (
        AutoCompressor,
        AutoCompressorOptions,
    )

    exported = build_compressor("autocompressor", _fresh_target(final), {})
    summary = parts.module.get_parameter("embed_summary.weight").detach()
    collate: Any = parts.collate
    target = TargetModel("in memory", collate.tokenizer, parts.base.eval())
    return exported, AutoCompressor(target, AutoCompressorOptions(),
                                    SummarySpec(summary, True, ()))


_LOADERS = {"500x": _encoder_method("500x", {}),
            "icae": _encoder_method("icae", {"variant": "500x-baseline"}),
            "gist": _gist, "autocompressor": _autocompressor}


def _tensors(compressed: CompressedContext) -> list[torch.Tensor]:
    if isinstance(compressed, CompressedKV):
        return [*compressed.keys, *compressed.values]
    assert isinstance(compressed, CompressedEmbeddings)
    return [compressed.embeddings]


def _check_same_outputs(exported: Loaded, trained: Loaded, atol: float) -> None:
    request = [CompressionRequest(TEXT)]
    with torch.no_grad():
        (first,), (second,) = exported.compress(request), trained.compress(request)
    for a, b in zip(_tensors(first), _tensors(second), strict=True):
        assert a.shape == b.shape
        assert float((a - b).abs().max()) <= atol
    prompt = DecoderPrompt("regeneration", "", " Repeated text:")
    settings = GenerationSettings(max_new_tokens=12)
    (answer,), (expected,) = (exported.generate([(first, prompt)], settings),
                              trained.generate([(second, prompt)], settings))
    assert answer.text == expected.text and answer.generated_tokens > 0
