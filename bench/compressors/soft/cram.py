"""Per-sample "cramming" (Kuratov et al. 2025): optimise k input vectors per context.

No encoder: for each context, k vectors ``[k, hidden]`` (init: seeded normal x the embedding
matrix's std) are prepended to the context's tokens and optimised with AdamW (lr 1e-2,
betas (0.9, 0.9), weight decay 0.01) so that the frozen LM reproduces the context, for at most
``steps`` steps and stopping at 100% teacher-forced token accuracy. The best vectors seen
(highest accuracy, then lowest loss) are kept. It measures how much a perfect per-sample
compressor could carry: an upper bound for the learned ones.

Decoder prompts: regeneration = the vectors alone (the model continues with the text); QA =
the vectors followed by the prompt's ``suffix`` (the question and answer cue as the task
renders them). The prompt's ``prefix`` is not used: the vectors were optimised at the start.
Contexts of a batch are optimised together, each with its own loss and seed, so results do
not depend on the batch they are in.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from bench.compressors._api import (
    CompressionRequest,
    TargetModel,
    parse_options,
    register_compressor,
)
from bench.compressors.soft._decode import DecoderItem, greedy_generate
from bench.compressors.soft._prompts import SpecialIds, text_ids
from bench.compressors.soft._torch import input_embedding
from bench.generation import DecoderPrompt, GenerationOutput, GenerationSettings
from bench.records import CompressedContext, CompressedEmbeddings, CompressionStats

NAME = "cram"


@dataclass(frozen=True)
class CramOptions:
    """Options of ``cram`` (defaults from Kuratov et al. 2025)."""

    num_mem: int = 4
    steps: int = 5000
    lr: float = 1e-2
    beta1: float = 0.9
    beta2: float = 0.9
    weight_decay: float = 0.01
    max_context_tokens: int = 500
    batch_size: int = 8
    seed: int = 0
    progress: bool = False


@dataclass
class _Best:
    vectors: torch.Tensor
    accuracy: float
    loss: float
    steps: int


def _seed_for(seed: int, context: str) -> int:
    digest = hashlib.sha256(f"{seed}\0{context}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % (2**63)


class Cram:
    """``cram``: per-context optimised input vectors fed to the frozen target model."""

    name = NAME
    version = "1"

    def __init__(self, target: TargetModel, options: CramOptions) -> None:
        if target.model is None:
            raise ValueError("cram needs a neural target model (target.model)")
        if options.num_mem < 1 or options.steps < 0 or options.batch_size < 1:
            raise ValueError("cram: num_mem and batch_size must be >= 1 and steps >= 0")
        self.target = target
        self.model = target.model
        self.options = options
        self.ids = SpecialIds.from_tokenizer(target.tokenizer)

    def settings(self) -> dict[str, Any]:
        settings = asdict(self.options)
        for key in ("batch_size", "progress"):
            settings.pop(key)
        return settings

    def compress(self, requests: Sequence[CompressionRequest]) -> list[CompressedContext]:
        results: list[CompressedContext] = []
        size = self.options.batch_size
        for start in range(0, len(requests), size):
            chunk = requests[start:start + size]
            results.extend(self._compress_batch([r.context for r in chunk]))
        return results

    def _token_rows(self, contexts: Sequence[str]) -> list[list[int]]:
        rows = [text_ids(self.target.tokenizer, c)[: self.options.max_context_tokens]
                for c in contexts]
        return [row if row else [self.ids.eos] for row in rows]

    def _init_vectors(self, contexts: Sequence[str]) -> torch.Tensor:
        weight = input_embedding(self.model).weight  # type: ignore[union-attr]
        scale = float(weight.detach().float().std())
        rows = []
        for context in contexts:
            generator = torch.Generator().manual_seed(_seed_for(self.options.seed, context))
            rows.append(torch.randn(self.options.num_mem, weight.shape[1], generator=generator))
        return (torch.stack(rows) * scale).to(weight.device)

    def _compress_batch(self, contexts: Sequence[str]) -> list[CompressedContext]:
        began = time.perf_counter()
        rows = self._token_rows(contexts)
        vectors = torch.nn.Parameter(self._init_vectors(contexts))
        options = self.options
        optimizer = torch.optim.AdamW([vectors], lr=options.lr, weight_decay=options.weight_decay,
                                      betas=(options.beta1, options.beta2))
        best: list[_Best | None] = [None] * len(rows)
        inputs, labels = self._batch_tensors(rows)
        steps = range(self.options.steps + 1)
        for step in tqdm(steps, desc="cram", disable=not self.options.progress, leave=False):
            losses, accuracies = self._losses(vectors, inputs, labels)
            pairs = zip(losses.tolist(), accuracies.tolist(), strict=True)
            for row, (loss, accuracy) in enumerate(pairs):
                current = best[row]
                if current is None or (current.accuracy < 1.0 and (
                        accuracy > current.accuracy
                        or (accuracy == current.accuracy and loss < current.loss))):
                    best[row] = _Best(vectors[row].detach().clone(), accuracy, loss, step)
            finished = all(b is not None and b.accuracy >= 1.0 for b in best)
            if step == self.options.steps or finished:
                break
            (gradient,) = torch.autograd.grad(losses.sum(), [vectors])
            vectors.grad = gradient
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        seconds = (time.perf_counter() - began) / len(rows)
        return [self._record(context, found, seconds)
                for context, found in zip(contexts, best, strict=True)]

    def _record(self, context: str, best: _Best | None, seconds: float) -> CompressedEmbeddings:
        assert best is not None
        dtype = input_embedding(self.model).weight.dtype  # type: ignore[union-attr]
        stats = CompressionStats(self.target.count_tokens(context), self.options.num_mem, seconds)
        extra = {"teacher_forced_accuracy": best.accuracy, "steps": best.steps,
                 "loss": best.loss, "converged": best.accuracy >= 1.0}
        return CompressedEmbeddings(best.vectors.to(dtype), stats, extra)

    def _batch_tensors(self, rows: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        device = self.target.device
        length = max(len(row) for row in rows)
        k = self.options.num_mem
        inputs = torch.full((len(rows), length), self.ids.pad, dtype=torch.long, device=device)
        labels = torch.full((len(rows), k + length), -100, dtype=torch.long, device=device)
        for i, row in enumerate(rows):
            inputs[i, : len(row)] = torch.tensor(list(row), device=device)
            labels[i, k - 1: k - 1 + len(row)] = torch.tensor(list(row), device=device)
        return inputs, labels

    def _losses(self, vectors: torch.Tensor, inputs: torch.Tensor, labels: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-row mean loss (differentiable) and teacher-forced accuracy."""
        embedding = input_embedding(self.model)
        embeds = embedding(inputs)
        full = torch.cat([vectors.to(embeds.dtype), embeds], dim=1)
        logits = self.model(inputs_embeds=full, use_cache=False).logits.float()  # type: ignore[misc]
        token_loss = F.cross_entropy(logits.transpose(1, 2), labels, ignore_index=-100,
                                     reduction="none")
        valid = labels != -100
        counts = valid.sum(dim=1)
        losses = (token_loss * valid).sum(dim=1) / counts
        correct = ((logits.argmax(dim=-1) == labels) & valid).sum(dim=1)
        return losses, (correct.float() / counts).detach()

    def generate(self, items: Sequence[tuple[CompressedContext, DecoderPrompt]],
                 settings: GenerationSettings) -> list[GenerationOutput]:
        outputs: list[GenerationOutput] = []
        size = self.options.batch_size
        for start in range(0, len(items), size):
            chunk = [self._decoder_item(c, p) for c, p in items[start:start + size]]
            outputs.extend(greedy_generate(self.model, self.target.tokenizer, chunk, settings,  # type: ignore[arg-type]
                                           [self.ids.eos]))
        return outputs

    def _decoder_item(self, compressed: CompressedContext, prompt: DecoderPrompt) -> DecoderItem:
        if not isinstance(compressed, CompressedEmbeddings):
            raise TypeError(f"cram decodes CompressedEmbeddings, got {type(compressed).__name__}")
        if prompt.kind not in ("qa", "regeneration"):
            raise ValueError(f"cram: unknown prompt kind {prompt.kind!r}")
        suffix = text_ids(self.target.tokenizer, prompt.suffix) if prompt.kind == "qa" else []
        return DecoderItem(prompt_ids=tuple(suffix), embeds=compressed.embeddings)


@register_compressor(NAME)
def make_cram(target: TargetModel, options: Mapping[str, Any]) -> Cram:
    """Per-sample optimised input vectors (an upper bound for learned soft compressors)."""
    return Cram(target, parse_options(CramOptions, options, NAME))
