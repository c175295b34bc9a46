"""Training runs of the methods that fine-tune the LM itself: ``gist`` and ``autocompressor``.

One process; AdamW with linear warm-up (then constant or linear decay), gradient clipping,
``grad_accum`` micro-batches per step, each step's loss the summed token loss divided by the
step's target tokens. The dev loss (mean token loss over the dev examples) is measured at
step 0, every ``eval_every`` steps and at the end; ``OUT/final`` holds the method's published
checkpoint layout, ``OUT/metrics.json`` the losses.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from bench._atomic import atomic_write_json
from bench.compressors.soft._model import Example
from bench.training.config import TrainConfig
from bench.training.data import load_examples

FINETUNED_METHODS = ("gist", "autocompressor")
Batch = dict[str, torch.Tensor]


@dataclass
class MethodRun:
    """What a run trains: the module (``forward(batch)`` -> summed loss, target count), the
    collate function, and how the final checkpoint is written."""

    module: torch.nn.Module
    collate: Callable[[Sequence[Example]], Batch]
    save: Callable[[Path], Path]
    backward_substeps: bool = False


@dataclass
class MethodResult:
    final_dir: Path
    step: int
    dev_losses: list[tuple[int, float]] = field(default_factory=list)
    train_seconds: float = 0.0


def _lora(model: Any, config: TrainConfig, trained_fully: Sequence[str] = ()) -> Any:
    """LoRA layers injected into ``model`` in place (the returned wrapper merges them)."""
    from peft import LoraConfig, get_peft_model

    settings = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha,
                          lora_dropout=config.lora_dropout,
                          target_modules=list(config.lora_targets), task_type="CAUSAL_LM",
                          modules_to_save=list(trained_fully) or None)
    return get_peft_model(model, settings)


def _base(config: TrainConfig) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dtype = "float32" if config.dtype == "auto" else config.dtype
    tokenizer = AutoTokenizer.from_pretrained(config.base, revision=config.revision)
    model = AutoModelForCausalLM.from_pretrained(config.init_from or config.base,
                                                 revision=config.revision,
                                                 dtype=getattr(torch, dtype))
    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable()  # type: ignore[no-untyped-call]
    return tokenizer, model


def gist_run(config: TrainConfig) -> MethodRun:
    from bench.compressors.soft.gist_prompt import GistTokenizer
    from bench.training.gist_method import (
        GIST_TOKEN,
        GistCollator,
        GistTrainingModel,
        add_gist_token,
        save_gist,
    )

    if config.init_from:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(config.init_from)
        _, model = _base(config)
    else:
        tokenizer, model = _base(config)
    gist_id = add_gist_token(model, tokenizer)
    if config.lora:  # the new gist row must be learnt: embeddings are trained fully
        model = _lora(model, config, ("embed_tokens", "lm_head"))
    tokens = GistTokenizer(tokenizer, GIST_TOKEN, gist_id, int(tokenizer.bos_token_id))
    collate = GistCollator(tokens, config.num_mem, config.max_context_tokens,
                           config.max_answer_tokens)
    module = GistTrainingModel(model, gist_id)
    return MethodRun(module, collate,
                     lambda out: save_gist(module.model, tokenizer, config.num_mem, out))


def autocompressor_run(config: TrainConfig) -> MethodRun:
    from bench.training.autocompressor_method import (
        AutoCompressorCollator,
        AutoCompressorTrainingModel,
        save_autocompressor,
    )

    tokenizer, model = _base(config)
    module = AutoCompressorTrainingModel(model, config.num_mem, config.training_substeps,
                                         config.segments_per_substep, config.seed)
    if config.init_from:
        from bench.compressors.soft.autocompressor_checkpoint import load_summary_spec

        with torch.no_grad():
            module.embed_summary.weight[:] = load_summary_spec(model, config.init_from).embeddings
    wrapped = _lora(model, config) if config.lora else model
    collate = AutoCompressorCollator(tokenizer, config.max_context_tokens,
                                     config.max_answer_tokens)
    return MethodRun(module, collate,
                     lambda out: save_autocompressor(wrapped, module.embed_summary.weight,
                                                     tokenizer, out),
                     backward_substeps=True)


def dev_loss(run: MethodRun, dev: Sequence[Example], batch_size: int) -> float:
    """Mean token loss over ``dev``."""
    run.module.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(dev), batch_size):
            loss, targets = run.module(run.collate(dev[start: start + batch_size]))
            total, count = total + float(loss), count + int(targets)
    run.module.train()
    return total / max(count, 1)


def _lr_factor(config: TrainConfig, step: int) -> float:
    if config.warmup_steps and step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    if config.schedule == "linear":
        return max(0.0, (config.steps - step) / max(1, config.steps - config.warmup_steps))
    return 1.0


def _micro_batches(train: Sequence[Example], config: TrainConfig) -> Any:
    order = random.Random(config.seed)
    while True:
        indices = list(range(len(train)))
        order.shuffle(indices)
        for start in range(0, len(indices) - config.batch_size + 1, config.batch_size):
            yield [train[i] for i in indices[start: start + config.batch_size]]


def _targets(batch: Batch) -> int:
    return int((batch["labels"][:, 1:] != -100).sum())


def _step(run: MethodRun, batches: list[Batch]) -> float:
    """Backward passes of one optimizer step; returns its mean token loss."""
    pieces: list[Batch] = list(batches)
    if run.backward_substeps:  # the loss targets are those of the slices, counted by them
        slices: Callable[[Batch], list[Batch]] = run.module.slices  # type: ignore[assignment]
        pieces = [piece for batch in batches for piece in slices(batch)]
    targets = sum(_targets(piece) for piece in pieces)
    scale = 1.0 / max(targets, 1)
    total = 0.0
    for batch in batches:
        if run.backward_substeps:
            loss, _ = run.module.substeps(  # type: ignore[operator]
                batch, lambda part: (part * scale).backward())
        else:
            loss, _ = run.module(batch)
            (loss * scale).backward()
        total += float(loss.detach())
    return total * scale


def train_method(config: TrainConfig) -> MethodResult:
    """Train ``config.method`` (gist or autocompressor); the checkpoint ends in OUT/final."""
    torch.manual_seed(config.seed)
    random.seed(config.seed)
    run = gist_run(config) if config.method == "gist" else autocompressor_run(config)
    train, dev = load_examples(config.data, config.kind, config.dev, config.dev_size,
                               config.seed, config.max_train_examples)
    if len(train) < config.batch_size:
        raise ValueError(f"{config.data}: {len(train)} training examples, fewer than "
                         f"--batch-size {config.batch_size}")
    params = [p for p in run.module.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: _lr_factor(config, s))
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    result = MethodResult(out / "final", 0)
    result.dev_losses.append((0, dev_loss(run, dev, config.batch_size)))
    batches = _micro_batches(train, config)
    run.module.train()
    started = time.perf_counter()
    with (out / "train_log.jsonl").open("w", encoding="utf-8") as log:
        for step in range(1, config.steps + 1):
            loss = _step(run, [run.collate(next(batches)) for _ in range(config.grad_accum)])
            if config.max_grad_norm:
                torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            log.write(json.dumps({"step": step, "loss": loss}) + "\n")
            if config.eval_every and step % config.eval_every == 0 and step < config.steps:
                result.dev_losses.append((step, dev_loss(run, dev, config.batch_size)))
    result.train_seconds = time.perf_counter() - started
    result.step = config.steps
    result.dev_losses.append((config.steps, dev_loss(run, dev, config.batch_size)))
    run.save(result.final_dir)
    atomic_write_json(out / "metrics.json", {
        "method": config.method, "stage": config.stage, "steps": config.steps,
        "dev_loss": [{"step": s, "loss": v} for s, v in result.dev_losses],
        "config": config.as_json()})
    return result
