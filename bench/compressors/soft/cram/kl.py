"""The ``kl`` objective of ``cram``: match the frozen model's distributions (Wingate et al. 2022).

The vectors should make the model behave as it does with the full context. For every context
the frozen model first writes, greedily, what it would say next:

* its continuation: ``kl_tokens`` tokens after ``[BOS] + context``;
* for each probe question (options ``probes``), its answer: ``probe_tokens`` tokens after
  ``[BOS] + context + PROBE_TEMPLATE.format(question)``.

Each of these is a *view*. Over the view's tokens, the objective is the mean
``KL(p(. | context, prefix, y<j) || p(. | vectors, prefix, y<j))``: the teacher sees the
context, the student the vectors in its place; the teacher's distributions are computed once.
A context's loss is the mean over its views; its accuracy is the share of view tokens that
are the student's argmax.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from bench.compressors.soft._torch import input_embedding
from bench.substrate.errors import InputError

PROBE_TEMPLATE = " Question: {question} Answer:"
"""A probe as the QA tasks render the question after the context (``doc_to_text_qa``)."""


@dataclass(frozen=True)
class KlView:
    """One sequence whose next-token distributions are matched, for context ``row``."""

    row: int
    teacher_prefix: tuple[int, ...]
    student_prefix: tuple[int, ...]
    targets: tuple[int, ...]


def read_probe_file(path: str) -> tuple[str, ...]:
    """Probe questions from a text file, one per line (blank lines skipped)."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise InputError(f"cram: probes={path!r} is neither 'none', 'question' nor a file of "
                         "probe questions (one per line)")
    questions = tuple(line.strip() for line in file.read_text(encoding="utf-8").splitlines()
                      if line.strip())
    if not questions:
        raise InputError(f"cram: the probe file {file} holds no question (one per line)")
    return questions


@torch.no_grad()
def greedy_tokens(model: Any, prefix: Sequence[int], count: int, eos: int) -> tuple[int, ...]:
    """The frozen model's greedy continuation of ``prefix`` (``count`` tokens, or to EOS)."""
    device = next(model.parameters()).device
    ids = list(prefix)
    new: list[int] = []
    for _ in range(count):
        logits = model(input_ids=torch.tensor([ids], device=device), use_cache=False).logits
        token = int(logits[0, -1].argmax())
        new.append(token)
        ids.append(token)
        if token == eos:
            break
    return tuple(new)


class KlObjective:
    """Per-context KL to the teacher (differentiable) and token accuracy, for one batch."""

    def __init__(self, model: Any, views: Sequence[KlView], rows: int, num_mem: int,
                 pad: int) -> None:
        self.model = model
        self.views = list(views)
        self.rows = rows
        self.num_mem = num_mem
        device = next(model.parameters()).device
        width = max(len(v.targets) for v in views)
        self.mask = torch.zeros(len(views), width, dtype=torch.bool, device=device)
        self.targets = torch.full((len(views), width), pad, dtype=torch.long, device=device)
        for i, view in enumerate(views):
            self.mask[i, :len(view.targets)] = True
            self.targets[i, :len(view.targets)] = torch.tensor(view.targets, device=device)
        self.teacher = self._teacher_log_probs(width)
        self.student_ids, self.positions = self._student_layout(pad, device)
        self.view_rows = torch.tensor([v.row for v in views], device=device)

    @torch.no_grad()
    def _teacher_log_probs(self, width: int) -> torch.Tensor:
        rows = []
        for view in self.views:
            ids = [*view.teacher_prefix, *view.targets[:-1]]
            inputs = torch.tensor([ids], device=self.mask.device)
            logits = self.model(input_ids=inputs, use_cache=False).logits[0].float()
            start = len(view.teacher_prefix) - 1
            picked = torch.log_softmax(logits[start:start + len(view.targets)], dim=-1)
            rows.append(torch.nn.functional.pad(picked, (0, 0, 0, width - picked.shape[0])))
        return torch.stack(rows)

    def _student_layout(self, pad: int, device: torch.device
                        ) -> tuple[torch.Tensor, torch.Tensor]:
        sequences = [[*v.student_prefix, *v.targets[:-1]] for v in self.views]
        length = max(1, max(len(s) for s in sequences))
        ids = torch.full((len(sequences), length), pad, dtype=torch.long, device=device)
        positions = torch.zeros_like(self.targets)
        for i, (sequence, view) in enumerate(zip(sequences, self.views, strict=True)):
            ids[i, :len(sequence)] = torch.tensor(sequence, dtype=torch.long, device=device)
            first = self.num_mem + len(view.student_prefix) - 1
            positions[i, :len(view.targets)] = torch.arange(
                first, first + len(view.targets), device=device)
        return ids, positions

    def losses(self, vectors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean KL per context (differentiable) and the student's token accuracy."""
        embeds = input_embedding(self.model)(self.student_ids)
        full = torch.cat([vectors[self.view_rows].to(embeds.dtype), embeds], dim=1)
        logits = self.model(inputs_embeds=full, use_cache=False).logits.float()
        index = self.positions.unsqueeze(-1).expand(-1, -1, logits.shape[-1])
        student = torch.log_softmax(logits.gather(1, index), dim=-1)
        kl = (self.teacher.exp() * (self.teacher - student)).sum(dim=-1)
        counts = self.mask.sum(dim=1)
        per_view = (kl * self.mask).sum(dim=1) / counts
        correct = ((student.argmax(dim=-1) == self.targets) & self.mask).sum(dim=1)
        return self._per_row(per_view), self._per_row_share(correct, counts).detach()

    def _per_row(self, per_view: torch.Tensor) -> torch.Tensor:
        totals = torch.zeros(self.rows, dtype=per_view.dtype, device=per_view.device)
        totals = totals.index_add(0, self.view_rows, per_view)
        views = torch.zeros_like(totals).index_add(0, self.view_rows, torch.ones_like(per_view))
        return totals / views

    def _per_row_share(self, correct: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        hits = torch.zeros(self.rows, device=counts.device).index_add(
            0, self.view_rows, correct.float())
        total = torch.zeros(self.rows, device=counts.device).index_add(
            0, self.view_rows, counts.float())
        return hits / total
