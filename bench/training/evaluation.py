"""Dev evaluation on every process: token-weighted dev loss and (soft compressors) greedy-decoding
metrics.

The dev examples are split into global batches of ``batch_size x processes``; each process
takes its slice of each, and a process whose slice is empty runs a stand-in batch whose result
it drops, so that every process makes the same forward calls (FSDP and ZeRO-3 gather
parameters collectively). Under those strategies decoding runs for the full token budget and
is cut at EOS afterwards, for the same reason. Sums are reduced over processes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

import torch

from bench.compressors.soft.decode import greedy_ids
from bench.compressors.soft.encoder.model import SoftModel
from bench.generation import GenerationSettings
from bench.training.example import Example
from bench.training.method import MethodParts, summed_loss
from bench.training.strategy import is_sharded

if TYPE_CHECKING:
    from accelerate import Accelerator

T = TypeVar("T")


def process_slices(items: Sequence[T], batch_size: int, processes: int, index: int
                   ) -> list[list[T]]:
    """This process's slice of each global batch (empty where the items ran out)."""
    step = batch_size * processes
    return [list(items[start + index * batch_size:start + (index + 1) * batch_size])
            for start in range(0, len(items), step)]


def generate_texts(model: SoftModel, examples: Sequence[Example], max_answer_tokens: int,
                   lockstep: bool) -> list[str]:
    """Greedy outputs for ``examples`` (one kind): answers or regenerated contexts."""
    memory = model.encode([example.context for example in examples])
    items = [model.decoder_input(memory, row, example.kind,
                                 model.prompt_ids(example.kind, example.question))
             for row, example in enumerate(examples)]
    limit = max_answer_tokens if examples[0].kind == "qa" else model.max_context_tokens
    eos = model.ids.eos
    rows, _, _ = greedy_ids(model.base, model.tokenizer, items,
                            GenerationSettings(max_new_tokens=limit), [] if lockstep else [eos])
    texts = []
    for row in rows:
        tokens = row.tokens[:row.tokens.index(eos)] if eos in row.tokens else row.tokens
        texts.append(str(model.tokenizer.decode(tokens, skip_special_tokens=True)))
    return texts


def _score(example: Example, text: str) -> float:
    from bench.metrics import rouge_l_f, squad_f1

    if example.kind == "qa":
        return squad_f1(text, list(example.answers or (example.target,)))
    return rouge_l_f(text, example.target)


@torch.no_grad()
def dev_loss(accelerator: Accelerator, module: Any, collate: Callable[[list[Example]], Any],
             dev: Sequence[Example], batch_size: int) -> float:
    """Summed token loss of the dev examples / their target tokens (all processes)."""
    processes, index = accelerator.num_processes, accelerator.process_index
    totals = torch.zeros(2, dtype=torch.float64, device=accelerator.device)
    for part in process_slices(dev, batch_size, processes, index):
        batch = collate(part or list(dev[:1]))
        summed = summed_loss(module, batch)
        if part:
            totals[0] += summed.double()
            totals[1] += batch.target_tokens
    loss_sum, targets = accelerator.reduce(totals, reduction="sum").tolist()
    return float(loss_sum / max(targets, 1.0))


@torch.no_grad()
def generation_metrics(accelerator: Accelerator, module: Any, dev: Sequence[Example], *,
                       model: SoftModel, batch_size: int, n_generate: int,
                       max_answer_tokens: int) -> dict[str, float]:
    """Rouge-L-F (rouge_score) for regeneration or SQuAD F1 for QA of the greedy outputs for
    the first ``n_generate`` dev examples."""
    processes, index = accelerator.num_processes, accelerator.process_index
    shown = list(dev[:n_generate])
    if not shown:
        return {}
    lockstep = is_sharded(accelerator)
    totals = torch.zeros(2, dtype=torch.float64, device=accelerator.device)
    for part in process_slices(shown, batch_size, processes, index):
        run = partial(generate_texts, examples=part or shown[:1],
                      max_answer_tokens=max_answer_tokens, lockstep=lockstep)
        texts = module(run=run)
        for example, text in zip(part, texts, strict=False):
            totals[0] += _score(example, text)
            totals[1] += 1
    score_sum, scored = accelerator.reduce(totals, reduction="sum").tolist()
    metric = "rouge_l_f" if dev[0].kind == "regeneration" else "squad_f1"
    return {metric: score_sum / scored}


def evaluate(accelerator: Accelerator, module: Any, parts: MethodParts,
             dev: Sequence[Example], batch_size: int) -> dict[str, float]:
    """Dev loss and, where the method decodes, its generation metric."""
    if not dev:
        return {}
    was_training = module.training
    module.eval()
    result = {"dev_loss": dev_loss(accelerator, module, parts.collate, dev, batch_size)}
    if parts.generate is not None:
        result.update(parts.generate(accelerator, module, dev))
    module.train(was_training)
    return result
