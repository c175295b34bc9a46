"""The training loop (nanoGPT-sized): AdamW, warm-up, accumulation, eval, resumable saves.

The same code runs on one CPU process (tests) and on several GPUs under ``accelerate
launch``: the :class:`accelerate.Accelerator` handles devices, DDP and bf16 autocast.
"""

from __future__ import annotations

import math
import random
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from bench._atomic import atomic_write_json
from bench.compressors.soft import checkpoint as ckpt
from bench.compressors.soft._decode import greedy_generate
from bench.compressors.soft._encoder import LoraSettings
from bench.compressors.soft._layout import Layout
from bench.compressors.soft._model import Example, SoftModel
from bench.generation import GenerationSettings
from bench.training.config import TrainConfig
from bench.training.data import load_examples
from bench.training.state import latest_checkpoint, load_state, save_state


@dataclass
class TrainResult:
    """Where the run ended and what it measured."""

    final_dir: Path
    step: int
    history: list[dict[str, Any]] = field(default_factory=list)
    train_seconds: float = 0.0
    train_tokens: int = 0
    """Encoder + decoder tokens processed by this run's steps (all processes)."""


def model_class(method: str) -> type[SoftModel]:
    from bench.compressors.soft.five_hundred_x import KVSoftModel
    from bench.compressors.soft.icae import EmbeddingSoftModel

    return KVSoftModel if method == "500x" else EmbeddingSoftModel


def load_base(config: TrainConfig, device_is_cuda: bool) -> tuple[Any, Any]:
    """Tokenizer and frozen base model of the run."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dtype = config.dtype
    if dtype == "auto":
        dtype = "bfloat16" if device_is_cuda else "float32"
    tokenizer = AutoTokenizer.from_pretrained(config.base, revision=config.revision)
    model = AutoModelForCausalLM.from_pretrained(config.base, revision=config.revision,
                                                 dtype=getattr(torch, dtype))
    model.requires_grad_(False)
    return tokenizer, model


def build_model(config: TrainConfig, base: Any, tokenizer: Any) -> SoftModel:
    lora = LoraSettings(config.lora_r, config.lora_alpha, config.lora_dropout,
                        tuple(config.lora_targets))
    layout = config.layout_settings()
    model = model_class(config.method)(base, tokenizer, config.num_mem, lora, config.seed,
                                       layout)
    if config.init_from:
        path = Path(config.init_from)
        recorded = ckpt.read_config(path)
        ckpt.check_compatible(recorded, path, config.method, base, config.base, config.num_mem)
        _check_same_layout(ckpt.layout_of(recorded), layout, path)
        ckpt.load_weights(model, path)
    if config.gradient_checkpointing:
        model.encoder.enable_gradient_checkpointing()
    return model


def _check_same_layout(recorded: Layout, layout: Layout, path: Path) -> None:
    for name in ("name", "context_length", "decoder_positions"):
        if getattr(recorded, name) != getattr(layout, name):
            raise ckpt.CheckpointMismatchError(
                f"{path / ckpt.CONFIG_FILE}: trained with layout {name}="
                f"{getattr(recorded, name)}, this run uses {getattr(layout, name)}")


def micro_batches(examples: Sequence[Example], batch_size: int, seed: int, start: int,
                  stride: int = 1, offset: int = 0) -> Iterator[tuple[int, list[Example]]]:
    """Endless seeded micro-batches ``(index, batch)`` from global index ``start``; process
    ``offset`` of ``stride`` takes every ``stride``-th one (same order on every process)."""
    per_epoch = max(1, len(examples) // batch_size)
    index = start
    while True:
        epoch, position = divmod(index, per_epoch)
        order = list(range(len(examples)))
        random.Random(seed * 1_000_003 + epoch).shuffle(order)
        chunk = order[position * batch_size:(position + 1) * batch_size]
        if index % stride == offset:
            yield index, [examples[i] for i in chunk]
        index += 1


def clip_examples(examples: Sequence[Example], max_answer: int, tokenizer: Any) -> list[Example]:
    """QA answers cut to ``max_answer`` tokens (regeneration targets follow the context cut)."""
    clipped = []
    for example in examples:
        if example.kind == "qa":
            ids = tokenizer(example.target, add_special_tokens=False)["input_ids"][:max_answer]
            target = tokenizer.decode(ids, skip_special_tokens=True)
            example = Example(example.context, "qa", target, example.question, example.answers)
        clipped.append(example)
    return clipped


@torch.no_grad()
def evaluate(model: SoftModel, dev: Sequence[Example], batch_size: int, n_generate: int,
             max_new_tokens: int) -> dict[str, float]:
    """Dev loss (token-weighted over batches) and, on the first examples, generation metrics:
    Rouge-L-F (rouge_score) for regeneration, SQuAD F1 for QA."""
    from bench.metrics import rouge_l_f, squad_f1

    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for start in range(0, len(dev), batch_size):
        batch = dev[start:start + batch_size]
        total += float(model.loss(batch)) * len(batch)
        count += len(batch)
    scores: list[float] = []
    shown = list(dev[:n_generate])
    eos = [model.ids.eos]
    for start in range(0, len(shown), batch_size):
        batch = shown[start:start + batch_size]
        memory = model.encode([e.context for e in batch])
        items = [model.decoder_input(memory, row, e.kind, model.prompt_ids(e.kind, e.question))
                 for row, e in enumerate(batch)]
        limit = max_new_tokens if batch[0].kind == "qa" else model.max_context_tokens
        outputs = greedy_generate(model.base, model.tokenizer, items,
                                  GenerationSettings(max_new_tokens=limit), eos)
        for example, output in zip(batch, outputs, strict=True):
            if example.kind == "qa":
                scores.append(squad_f1(output.text, list(example.answers or (example.target,))))
            else:
                scores.append(rouge_l_f(output.text, example.target))
    model.train(was_training)
    metric = "rouge_l_f" if dev and dev[0].kind == "regeneration" else "squad_f1"
    result = {"dev_loss": total / max(count, 1)}
    if scores:
        result[metric] = sum(scores) / len(scores)
    return result


def _schedule(config: TrainConfig) -> Any:
    warmup, total = config.warmup_steps, config.steps

    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        if config.schedule == "linear":
            return max(0.0, (total - step) / max(1, total - warmup))
        return 1.0

    return factor


def _save(model: SoftModel, path: Path, config: TrainConfig, optimizer: Any, scheduler: Any,
          scalars: dict[str, Any]) -> None:
    with ckpt.atomic_directory(path) as tmp:
        ckpt.write_weights(model, tmp, ckpt.model_config(model, config.base, config.as_json()))
        save_state(tmp, optimizer, scheduler, scalars)


def _prune(out: Path, keep: int) -> None:
    done = sorted(p for p in out.glob("checkpoint-*") if p.is_dir())
    for old in done[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)


def train(config: TrainConfig) -> TrainResult:
    """Run (or resume) one training stage; returns the final checkpoint directory."""
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs, set_seed

    cuda = torch.cuda.is_available()
    bf16 = cuda and config.dtype in ("auto", "bfloat16")
    accelerator = Accelerator(
        gradient_accumulation_steps=config.grad_accum,
        mixed_precision="bf16" if bf16 else "no",
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
    )
    set_seed(config.seed)
    out = Path(config.out)
    tokenizer, base = load_base(config, cuda)
    model = build_model(config, base, tokenizer)
    train_set, dev_set = load_examples(config.data, config.kind, config.dev, config.dev_size,
                                       config.seed, config.max_train_examples)
    train_set = clip_examples(train_set, config.max_answer_tokens, tokenizer)
    dev_set = clip_examples(dev_set, config.max_answer_tokens, tokenizer)
    params = list(model.encoder.trainable_parameters().values())
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(config))
    model, optimizer = accelerator.prepare(model, optimizer)
    inner: SoftModel = accelerator.unwrap_model(model)

    step, micro, history = 0, 0, []
    resume = latest_checkpoint(out)
    if resume is not None:
        scalars = load_state(resume, optimizer, scheduler)
        ckpt.load_weights(inner, resume)
        step, micro, history = scalars["step"], scalars["micro"], scalars["history"]
    main = accelerator.is_main_process

    def log_eval() -> None:
        if main:
            record = {"step": step, **evaluate(inner, dev_set, config.batch_size,
                                               config.eval_generate, config.max_answer_tokens)}
            history.append(record)
            atomic_write_json(out / "metrics.json", history)
            tqdm.write(f"step {step}: " + ", ".join(f"{k}={v:.4g}" for k, v in record.items()
                                                    if k != "step"))
        accelerator.wait_for_everyone()

    if resume is None and config.eval_every > 0:
        log_eval()
    model.train()
    batches = micro_batches(train_set, config.batch_size, config.seed, micro,
                            accelerator.num_processes, accelerator.process_index)
    bar = tqdm(total=config.steps, initial=step, desc=f"{config.stage} {config.method}",
               disable=not (main and config.progress))
    started = time.perf_counter()
    train_seconds, train_tokens = 0.0, 0
    while step < config.steps:
        micro, batch = next(batches)
        micro += accelerator.num_processes
        began = time.perf_counter()
        with accelerator.accumulate(model):
            loss = model(batch)
            accelerator.backward(loss)
            if accelerator.sync_gradients and config.max_grad_norm > 0:
                accelerator.clip_grad_norm_(params, config.max_grad_norm)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        if cuda:
            torch.cuda.synchronize()
        train_seconds += time.perf_counter() - began
        train_tokens += inner.last_batch_tokens * accelerator.num_processes
        if not accelerator.sync_gradients:
            continue
        scheduler.step()
        step += 1
        bar.update(1)
        value = float(loss.detach())
        bar.set_postfix(loss=f"{value:.3f}", lr=f"{scheduler.get_last_lr()[0]:.2e}")
        if not math.isfinite(value):
            raise FloatingPointError(f"training loss became {value} at step {step}")
        if config.eval_every > 0 and step % config.eval_every == 0:
            log_eval()
        if main and (step % config.save_every == 0 or step == config.steps):
            scalars = {"step": step, "micro": micro, "history": history,
                       "seconds": time.perf_counter() - started}
            _save(inner, out / f"checkpoint-{step:07d}", config, optimizer, scheduler, scalars)
            _prune(out, config.keep_checkpoints)
        accelerator.wait_for_everyone()
    bar.close()
    final = out / "final"
    if main:
        ckpt.save_checkpoint(inner, final, config.base, config.as_json())
    accelerator.wait_for_everyone()
    return TrainResult(final, step, history, train_seconds, train_tokens)
