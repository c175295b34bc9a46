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

``objective=kl`` optimises the vectors instead so that the frozen model's next-token
distributions given them match those it gives with the full context, over its own
continuation of the context and, with ``probes``, its answers to probe questions (Wingate
et al. 2022; see :mod:`.cram_kl`). The vectors with the lowest KL are kept; the record's
``extra`` reports that KL (``kl``, and ``kl_initial`` before any step) beside the share of
those tokens the model predicts from the vectors (``teacher_forced_accuracy``).
``kl_tokens``: continuation length; ``probes``: ``none``, ``question`` (the request's own
question: the compression becomes question-aware) or a file of questions, one per line;
``probe_tokens``: answer length per probe.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from bench.compressors._api import (
    Capabilities,
    CompressionRequest,
    Family,
    Interval,
    TargetModel,
    option,
    parse_options,
    register_compressor,
)
from bench.compressors.soft._prompts import SpecialIds, generation_eos_ids, text_ids
from bench.compressors.soft._torch import input_embedding
from bench.compressors.soft.cram.kl import (
    PROBE_TEMPLATE,
    KlObjective,
    KlView,
    greedy_tokens,
    read_probe_file,
)
from bench.compressors.soft.decode import DecoderItem, greedy_generate, prompt_embeddings
from bench.generation import DecoderPrompt, GenerationOutput, GenerationSettings
from bench.records import CompressedContext, CompressedEmbeddings, CompressionStats
from bench.substrate.errors import InputError

NAME = "cram"


@dataclass(frozen=True)
class CramOptions:
    """Options of ``cram`` (defaults from Kuratov et al. 2025)."""

    num_mem: int = option(4, "input vectors optimised per context", accepts=Interval(1.0))
    steps: int = option(5000, "most AdamW steps per context (it stops at 100% teacher-forced "
                        "accuracy)", accepts=Interval(0.0))
    lr: float = option(1e-2, "AdamW learning rate, > 0")
    beta1: float = option(0.9, "AdamW beta1, in [0, 1)")
    beta2: float = option(0.9, "AdamW beta2, in [0, 1)")
    weight_decay: float = option(0.01, "AdamW weight decay, >= 0")
    max_context_tokens: int = option(500, "context tokens the vectors are optimised to carry",
                                     accepts=Interval(1.0))
    batch_size: int = option(8, "contexts optimised together (each with its own loss and "
                             "seed)", accepts=Interval(1.0))
    seed: int = option(0, "seed of the initial vectors (combined with each context)")
    progress: bool = option(False, "show a progress bar of the optimisation")
    objective: str = option("reconstruction", "reconstruction (the context's own tokens after "
                            "the vectors) or kl (the full-context model's next-token "
                            "distributions)")
    kl_tokens: int = option(32, "objective=kl: tokens of the model's own continuation of the "
                            "context matched", accepts=Interval(0.0))
    probes: str = option("none", "objective=kl: none, question (the request's own question; "
                         "the compression becomes question-aware) or a file of questions, one "
                         "per line")
    probe_tokens: int = option(8, "objective=kl: answer tokens matched per probe",
                               accepts=Interval(0.0))


OBJECTIVES = ("reconstruction", "kl")
_KL_OPTIONS = ("kl_tokens", "probes", "probe_tokens")
#: The AdamW settings' ranges, as stated and as tested (NaN is in none).
_OPTIMISER_RANGES: dict[str, tuple[str, Callable[[float], bool]]] = {
    "lr": ("> 0", lambda value: value > 0),
    "beta1": ("in [0, 1)", lambda value: 0 <= value < 1),
    "beta2": ("in [0, 1)", lambda value: 0 <= value < 1),
    "weight_decay": (">= 0", lambda value: value >= 0),
}


@dataclass
class _Best:
    vectors: torch.Tensor
    accuracy: float
    loss: float
    steps: int


class _Objective(Protocol):
    def losses(self, vectors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-context loss (differentiable) and accuracy."""
        ...


class _Reconstruction:
    """Cross-entropy of the context's own tokens after the vectors (Kuratov et al.)."""

    def __init__(self, model: Any, inputs: torch.Tensor, labels: torch.Tensor) -> None:
        self.model = model
        self.inputs = inputs
        self.labels = labels

    def losses(self, vectors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-row mean loss (differentiable) and teacher-forced accuracy."""
        embeds = input_embedding(self.model)(self.inputs)
        full = torch.cat([vectors.to(embeds.dtype), embeds], dim=1)
        logits = self.model(inputs_embeds=full, use_cache=False).logits.float()
        token_loss = F.cross_entropy(logits.transpose(1, 2), self.labels, ignore_index=-100,
                                     reduction="none")
        valid = self.labels != -100
        counts = valid.sum(dim=1)
        losses = (token_loss * valid).sum(dim=1) / counts
        correct = ((logits.argmax(dim=-1) == self.labels) & valid).sum(dim=1)
        return losses, (correct.float() / counts).detach()


def _check_optimiser(options: CramOptions) -> None:
    for key, (stated, holds) in _OPTIMISER_RANGES.items():
        value = getattr(options, key)
        if not holds(value):
            raise InputError(f"cram: option {key}={value} must be {stated}")


def _seed_for(seed: int, context: str) -> int:
    digest = hashlib.sha256(f"{seed}\0{context}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % (2**63)


class Cram:
    """``cram``: per-context optimised input vectors fed to the frozen target model."""

    name = NAME
    version = "1"

    def __init__(self, target: TargetModel, options: CramOptions) -> None:
        if target.model is None:
            raise InputError("cram needs a neural target model (target.model)")
        if options.num_mem < 1 or options.steps < 0 or options.batch_size < 1:
            raise InputError("cram: num_mem and batch_size must be >= 1 and steps >= 0")
        if options.objective not in OBJECTIVES:
            raise InputError(f"cram: objective={options.objective!r} is not one of "
                             f"{', '.join(OBJECTIVES)}")
        _check_optimiser(options)
        self.target = target
        self.model = target.model
        self.options = options
        self.ids = SpecialIds.from_tokenizer(target.tokenizer)
        self.stop_ids = generation_eos_ids(target.tokenizer, target.model)
        self.probe_questions = self._probe_questions(options)

    @staticmethod
    def _probe_questions(options: CramOptions) -> tuple[str, ...]:
        if options.objective != "kl" or options.probes in ("none", "question"):
            return ()
        return read_probe_file(options.probes)

    def settings(self) -> dict[str, Any]:
        settings = asdict(self.options)
        for key in ("batch_size", "progress"):
            settings.pop(key)
        if self.options.objective == "reconstruction":
            settings.pop("objective")
            for key in _KL_OPTIONS:
                settings.pop(key)
        return settings

    def compress(self, requests: Sequence[CompressionRequest]) -> list[CompressedContext]:
        results: list[CompressedContext] = []
        size = self.options.batch_size
        for start in range(0, len(requests), size):
            results.extend(self._compress_batch(requests[start:start + size]))
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

    def _objective(self, requests: Sequence[CompressionRequest]) -> _Objective:
        rows = self._token_rows([r.context for r in requests])
        if self.options.objective == "kl":
            views = [view for row, (request, ids) in enumerate(zip(requests, rows, strict=True))
                     for view in self._kl_views(row, ids, request.question)]
            return KlObjective(self.model, views, len(rows), self.options.num_mem, self.ids.pad)
        return _Reconstruction(self.model, *self._batch_tensors(rows))

    def _kl_views(self, row: int, ids: list[int], question: str | None) -> list[KlView]:
        options = self.options
        questions = self.probe_questions
        if options.probes == "question" and question:
            questions = (question,)
        probes = [text_ids(self.target.tokenizer, PROBE_TEMPLATE.format(question=q.strip()))
                  for q in questions]
        reserve = max([options.kl_tokens] + [len(p) + options.probe_tokens for p in probes])
        prefix = ([] if self.ids.bos is None else [self.ids.bos])
        prefix += ids[:max(1, self._positions() - len(prefix) - reserve)]
        views = []
        if options.kl_tokens > 0:
            continuation = greedy_tokens(self.model, prefix, options.kl_tokens, self.ids.eos)
            views.append(KlView(row, tuple(prefix), (), continuation))
        for probe_ids in probes:
            answer = greedy_tokens(self.model, prefix + probe_ids, options.probe_tokens,
                                   self.ids.eos)
            views.append(KlView(row, (*prefix, *probe_ids), tuple(probe_ids), answer))
        if not views:
            raise InputError("cram: objective=kl has nothing to match for this context; give "
                             "kl_tokens > 0 or probes (question or a file of questions)")
        return views

    def _positions(self) -> int:
        """Positions the model takes at once (teacher: context, probe and answer)."""
        config = self.model.config  # type: ignore[union-attr]
        text_config = getattr(config, "get_text_config", lambda: config)()
        return int(getattr(text_config, "max_position_embeddings", 1 << 20))

    def _improves(self, current: _Best | None, accuracy: float, loss: float) -> bool:
        if current is None:
            return True
        if self.options.objective == "kl":
            return loss < current.loss
        return current.accuracy < 1.0 and (
            accuracy > current.accuracy or (accuracy == current.accuracy and loss < current.loss))

    def _finished(self, best: Sequence[_Best | None]) -> bool:
        if self.options.objective == "kl":
            return False
        return all(b is not None and b.accuracy >= 1.0 for b in best)

    def _compress_batch(self, requests: Sequence[CompressionRequest]
                        ) -> list[CompressedContext]:
        began = time.perf_counter()
        contexts = [r.context for r in requests]
        objective = self._objective(requests)
        vectors = torch.nn.Parameter(self._init_vectors(contexts))
        options = self.options
        optimizer = torch.optim.AdamW([vectors], lr=options.lr, weight_decay=options.weight_decay,
                                      betas=(options.beta1, options.beta2))
        best: list[_Best | None] = [None] * len(contexts)
        initial: list[float] = []
        steps = range(self.options.steps + 1)
        for step in tqdm(steps, desc="cram", disable=not self.options.progress, leave=False):
            losses, accuracies = objective.losses(vectors)
            initial = initial or losses.tolist()
            pairs = zip(losses.tolist(), accuracies.tolist(), strict=True)
            for row, (loss, accuracy) in enumerate(pairs):
                if self._improves(best[row], accuracy, loss):
                    best[row] = _Best(vectors[row].detach().clone(), accuracy, loss, step)
            if step == self.options.steps or self._finished(best):
                break
            (gradient,) = torch.autograd.grad(losses.sum(), [vectors])
            vectors.grad = gradient
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        seconds = (time.perf_counter() - began) / len(contexts)
        return [self._record(context, found, first, seconds)
                for context, found, first in zip(contexts, best, initial, strict=True)]

    def _record(self, context: str, best: _Best | None, initial_loss: float,
                seconds: float) -> CompressedEmbeddings:
        assert best is not None
        dtype = input_embedding(self.model).weight.dtype  # type: ignore[union-attr]
        original = self.target.count_tokens(context)
        stats = CompressionStats(original, self.options.num_mem, seconds,
                                 encoded_tokens=min(original, self.options.max_context_tokens))
        extra: dict[str, Any] = {"teacher_forced_accuracy": best.accuracy, "steps": best.steps,
                                 "loss": best.loss, "converged": best.accuracy >= 1.0}
        if self.options.objective == "kl":
            extra.update(objective="kl", kl=best.loss, kl_initial=initial_loss)
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

    def generate(self, items: Sequence[tuple[CompressedContext, DecoderPrompt]],
                 settings: GenerationSettings) -> list[GenerationOutput]:
        outputs: list[GenerationOutput] = []
        size = self.options.batch_size
        for start in range(0, len(items), size):
            chunk = [self._decoder_item(c, p) for c, p in items[start:start + size]]
            outputs.extend(greedy_generate(self.model, self.target.tokenizer, chunk, settings,  # type: ignore[arg-type]
                                           self.stop_ids))
        return outputs

    def _decoder_item(self, compressed: CompressedContext, prompt: DecoderPrompt) -> DecoderItem:
        if not isinstance(compressed, CompressedEmbeddings):
            raise TypeError(f"cram decodes CompressedEmbeddings, got {type(compressed).__name__}")
        if prompt.kind not in ("qa", "regeneration"):
            raise ValueError(f"cram: unknown prompt kind {prompt.kind!r}")
        suffix = text_ids(self.target.tokenizer, prompt.suffix) if prompt.kind == "qa" else []
        return DecoderItem(prompt_ids=tuple(suffix), embeds=compressed.embeddings)

    def decoder_input_embeddings(self, compressed: CompressedContext, prompt: DecoderPrompt
                                 ) -> torch.Tensor:
        """``[vectors + suffix tokens, hidden]``, as :meth:`generate` feeds it."""
        item = self._decoder_item(compressed, prompt)
        return prompt_embeddings(self.model, item)  # type: ignore[arg-type]

    def stop_token_ids(self) -> list[int]:
        return list(self.stop_ids)


def _uses_question(settings: Mapping[str, Any]) -> bool:
    return settings.get("objective") == "kl" and settings.get("probes") == "question"


@register_compressor(NAME, Capabilities(Family.SOFT_EMBEDDINGS, question_aware=_uses_question,
                                        budget_options=("num_mem",), prompt_embeds=True))
def make_cram(target: TargetModel, options: Mapping[str, Any]) -> Cram:
    """Per-sample optimised input vectors (an upper bound for learned soft compressors)."""
    return Cram(target, parse_options(CramOptions, options, NAME))
