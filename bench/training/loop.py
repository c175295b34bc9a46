"""The training loop (nanoGPT-sized) on accelerate: one code path for one CPU process, DDP,
FSDP and DeepSpeed ZeRO-3 (``accelerate launch --config_file configs/accelerate/...``), and
for every method (what a method supplies: :class:`bench.training.method.MethodParts`).

A step takes ``grad_accum`` micro-batches on every process; its loss is the summed token loss
of all of them divided by the number of target tokens of the whole global batch (counted on
every process and summed first), so a step computes the same loss and update however the
global batch is split between processes and accumulation steps.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from tqdm.auto import tqdm

from bench.compressors.soft.encoder.export import check_repo_export
from bench.substrate.atomic import atomic_directory, atomic_write_json, atomic_write_text
from bench.substrate.errors import InputError
from bench.training import state as run_state
from bench.training.batches import DataPosition, micro_batches, training_loader
from bench.training.config import TrainConfig
from bench.training.data import load_examples
from bench.training.evaluation import evaluate
from bench.training.example import Example
from bench.training.inputs import Identity, check_same_inputs, input_identities
from bench.training.method import MethodParts, backward_passes
from bench.training.registry import method_parts
from bench.training.resume import TrainingState, load_training_state, save_training_state
from bench.training.strategy import (
    check_fsdp,
    check_launched_strategy,
    distributed_type,
    gathered_trainable_state,
    is_deepspeed,
    make_accelerator,
    prepare_deepspeed,
    without_zero3_init,
)
from bench.training.throughput import compute_parameters, mfu, peak_tflops

if TYPE_CHECKING:
    from accelerate import Accelerator

LOG_FILE = "train_log.jsonl"
METRICS_FILE = "metrics.json"
# Settings a resumed run may change; every other one must match the checkpoint's. The inputs
# (base, data, dev, init_from) may move, but their content must match (see .inputs).
RESUMABLE_CHANGES = ("steps", "eval_every", "eval_generate", "save_every", "keep_checkpoints",
                     "progress", "peak_tflops", "export_500x_repo", "out", "base", "data",
                     "dev", "dev_size", "init_from")
Inputs = dict[str, Identity | None]


@dataclass
class TrainResult:
    """Where the run ended and what it measured."""

    final_dir: Path
    step: int
    history: list[dict[str, Any]] = field(default_factory=list)
    train_seconds: float = 0.0
    train_tokens: int = 0
    """Input tokens of this run's steps (all processes; soft methods: encoder + memory +
    decoder)."""
    losses: list[float] = field(default_factory=list)
    """The logged loss of each step of this run."""
    mfu: float | None = None

    @property
    def tokens_per_second(self) -> float:
        return self.train_tokens / self.train_seconds if self.train_seconds else 0.0


def _schedule(config: TrainConfig) -> Any:
    warmup, total = config.warmup_steps, config.steps

    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        if config.schedule == "linear":
            return max(0.0, (total - step) / max(1, total - warmup))
        return 1.0

    return factor


def train_step(accelerator: Accelerator, module: Any, optimizer: Any, micro: Sequence[Any],
               max_grad_norm: float) -> tuple[float, int]:
    """One optimizer step over this process's micro-batches; returns the step's loss (summed
    token loss of the global batch / its target tokens) and its tokens (all processes)."""
    counts = torch.tensor([sum(b.target_tokens for b in micro), sum(b.tokens for b in micro)],
                          dtype=torch.long, device=accelerator.device)
    targets, tokens = (int(n) for n in accelerator.reduce(counts, reduction="sum").tolist())
    if targets == 0:
        raise InputError("a global batch without target tokens; check the training data")
    # accelerate (or DeepSpeed) divides by the accumulation steps, DDP/FSDP/ZeRO average
    # the gradients of the processes: undo both so that the gradient is sum / targets.
    scale = accelerator.num_processes * len(micro) / targets
    local = torch.zeros((), dtype=torch.float64, device=accelerator.device)
    for batch in micro:
        with accelerator.accumulate(module):
            summed = backward_passes(accelerator, module, batch, scale)
            if accelerator.sync_gradients and max_grad_norm > 0:
                accelerator.clip_grad_norm_(module.parameters(), max_grad_norm)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        local += summed.detach().double()
    return float(accelerator.reduce(local, reduction="sum")) / targets, tokens


def _check_resumable(directory: Path, recorded: dict[str, Any], config: TrainConfig,
                     processes: int, inputs: Inputs) -> None:
    where = directory / run_state.STATE_FILE
    if recorded.get("processes") != processes:
        raise InputError(f"{where}: written by {recorded.get('processes')} processes, this run "
                         f"has {processes}; resume with the same number or use another --out")
    current = config.as_json()
    for name, value in recorded.get("config", {}).items():
        if name not in RESUMABLE_CHANGES and current.get(name) != value:
            raise InputError(f"{where}: trained with {name}={value!r}, this run has "
                             f"{current.get(name)!r}; resume with the same settings or use "
                             "another --out")
    check_same_inputs(where, recorded.get("inputs"), inputs)


@dataclass
class _Run:
    """The prepared objects of one run and what it has logged."""

    config: TrainConfig
    accelerator: Accelerator
    module: Any
    parts: MethodParts
    out: Path
    history: list[dict[str, Any]]
    dev: list[Example]
    state: TrainingState

    @property
    def main(self) -> bool:
        return bool(self.accelerator.is_main_process)

    def log_eval(self, step: int) -> None:
        config = self.config
        record = {"step": step, **evaluate(self.accelerator, self.module, self.parts,
                                           self.dev, config.batch_size)}
        self.history.append(record)
        if self.main:
            atomic_write_json(self.out / METRICS_FILE, self.history)
            tqdm.write(f"step {step}: " + ", ".join(
                f"{k}={v:.4g}" for k, v in record.items() if k != "step"))

    def log_step(self, record: dict[str, Any]) -> None:
        if self.main:
            with (self.out / LOG_FILE).open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(record) + "\n")

    def save(self, step: int, scalars: dict[str, Any]) -> None:
        """Every process writes its part of ``checkpoint-<step>`` (see :mod:`.state`)."""
        accelerator, out = self.accelerator, self.out
        with run_state.staged(out, step, self.main) as staging:
            accelerator.wait_for_everyone()
            export = self.parts.checkpoint_export
            weights = (gathered_trainable_state(accelerator, self.module)
                       if export or not is_deepspeed(accelerator) else {})
            save_training_state(staging, self.state, weights)
            accelerator.wait_for_everyone()
            if self.main:
                if export:
                    self.parts.export(staging, weights, False)
                atomic_write_json(staging / run_state.STATE_FILE, scalars)
                run_state.publish(staging, run_state.checkpoint_dir(out, step))
                run_state.prune(out, self.config.keep_checkpoints)
        accelerator.wait_for_everyone()

    def export_final(self) -> Path:
        weights = gathered_trainable_state(self.accelerator, self.module)
        final = self.out / "final"
        if self.main:
            with atomic_directory(final) as tmp, without_zero3_init(self.accelerator):
                self.parts.export(tmp, weights, True)
        self.accelerator.wait_for_everyone()
        return final


def _checkpoint_to_resume(config: TrainConfig, accelerator: Accelerator, inputs: Inputs
                          ) -> tuple[Path, dict[str, Any]] | None:
    """The newest checkpoint of ``config.out`` and what it records, if there is one; it must
    have been written with the same settings and inputs."""
    out = Path(config.out)
    if accelerator.is_main_process:
        run_state.remove_staging(out)
    accelerator.wait_for_everyone()
    resume = run_state.latest_checkpoint(out)
    if resume is None:
        return None
    recorded = run_state.read_trainer_state(resume)
    _check_resumable(resume, recorded, config, accelerator.num_processes, inputs)
    return resume, recorded


def _resume(run: _Run, found: tuple[Path, dict[str, Any]] | None) -> int:
    """Restore the checkpoint found, if any, and drop the log records after it; returns its
    step."""
    step = 0
    if found is not None:
        directory, recorded = found
        load_training_state(directory, run.state)
        run.history[:] = recorded["history"]
        step = recorded["step"]
    if run.main:
        run.out.mkdir(parents=True, exist_ok=True)
        _trim_log(run.out / LOG_FILE, step)
        if (run.out / METRICS_FILE).is_file():
            atomic_write_json(run.out / METRICS_FILE, run.history)
    run.accelerator.wait_for_everyone()
    return step


def _trim_log(log: Path, step: int) -> None:
    """Keep the records of steps up to ``step``; a last line cut off by a kill is dropped."""
    if not log.is_file():
        return
    lines = [line for line in log.read_text(encoding="utf-8", errors="replace").splitlines()
             if line.strip()]
    kept = []
    for number, line in enumerate(lines, 1):
        try:
            record = json.loads(line)
        except ValueError:
            if number == len(lines):
                break
            raise InputError("not a JSON record", log, number,
                             hint="remove the line or the file") from None
        if not isinstance(record, dict) or not isinstance(record.get("step"), int):
            raise InputError("a record without its step", log, number,
                             hint="remove the line or the file")
        if record["step"] <= step:
            kept.append(line)
    atomic_write_text(log, "".join(line + "\n" for line in kept))


def train(config: TrainConfig, accelerator: Accelerator | None = None) -> TrainResult:
    """Run (or resume) one training stage; returns the final checkpoint directory."""
    from accelerate.utils import set_seed

    if config.export_500x_repo:
        check_repo_export(config.method, tuple(config.lora_targets))
    accelerator = accelerator or make_accelerator(config)
    check_launched_strategy(accelerator)
    inputs = input_identities(config)
    found = _checkpoint_to_resume(config, accelerator, inputs)
    set_seed(config.seed, device_specific=True)
    cuda = accelerator.device.type == "cuda"
    parts = method_parts(config, cuda, inputs)
    parameters = compute_parameters(parts.base)
    train_set, dev_set = load_examples(config.data, config.kind, config.dev, config.dev_size,
                                       config.seed, config.max_train_examples)
    module = parts.module
    check_fsdp(accelerator, config.method)
    if is_deepspeed(accelerator) and not parts.supports_deepspeed:
        raise InputError(f"--method {config.method} with --training-substeps "
                         f"{config.training_substeps} cannot run under DeepSpeed (it steps the "
                         "optimizer at every backward pass); use DDP or FSDP, or one substep")
    prepare_deepspeed(accelerator, config, module, parts.external_parameters)
    optimizer = torch.optim.AdamW([p for p in module.parameters() if p.requires_grad],
                                  lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(config))
    processes = accelerator.num_processes
    loader, sampler = training_loader(train_set, parts.collate, config.batch_size, config.seed,
                                      config.batch_size * config.grad_accum * processes)
    module, optimizer, loader, scheduler = accelerator.prepare(module, optimizer, loader,
                                                               scheduler)
    position = DataPosition()
    state = TrainingState(accelerator, module, optimizer, scheduler, position)
    run = _Run(config, accelerator, module, parts, Path(config.out), [], dev_set, state)
    step = _resume(run, found)
    if step == 0 and config.eval_every > 0:
        run.log_eval(0)
    peak = config.peak_tflops or (peak_tflops(torch.cuda.get_device_name()) if cuda else None)
    result = TrainResult(run.out / "final", step, run.history)
    module.train()
    batches = micro_batches(accelerator, loader, sampler, position)
    bar = tqdm(total=config.steps, initial=step, desc=f"{config.stage} {config.method}",
               disable=not (run.main and config.progress))
    while step < config.steps:
        began = time.perf_counter()
        micro = [next(batches) for _ in range(config.grad_accum)]
        loss, tokens = train_step(accelerator, module, optimizer, micro, config.max_grad_norm)
        scheduler.step()
        if cuda:
            torch.cuda.synchronize()
        seconds = time.perf_counter() - began
        step += 1
        if not math.isfinite(loss):
            raise FloatingPointError(f"training loss became {loss} at step {step}")
        result.losses.append(loss)
        result.train_seconds += seconds
        result.train_tokens += tokens
        record: dict[str, Any] = {"step": step, "loss": loss, "lr": scheduler.get_last_lr()[0],
                                  "tokens": tokens, "seconds": seconds,
                                  "tokens_per_s": tokens / seconds}
        if peak:
            record["mfu"] = mfu(record["tokens_per_s"], parameters, processes, peak,
                                parts.flops_per_parameter_token)
        run.log_step(record)
        bar.update(1)
        shown = {"loss": f"{loss:.3f}", "lr": f"{record['lr']:.2e}",
                 "tok/s": f"{record['tokens_per_s']:.0f}"}
        if peak:
            shown["mfu"] = f"{record['mfu']:.1%}"
        bar.set_postfix(shown)
        if config.eval_every > 0 and step % config.eval_every == 0:
            run.log_eval(step)
        if step % config.save_every == 0 or step == config.steps:
            run.save(step, {"step": step, "history": run.history, "processes": processes,
                            "distributed_type": distributed_type(accelerator),
                            "config": config.as_json(), "inputs": inputs})
    bar.close()
    if peak and result.train_seconds:
        result.mfu = mfu(result.tokens_per_second, parameters, processes, peak,
                         parts.flops_per_parameter_token)
    result.final_dir = run.export_final()
    result.step = step
    return result
