"""AutoCompressor training (Chevalier et al. 2023, princeton-nlp/AutoCompressors, Llama path).

A token sequence is cut into ``training_substeps`` equal slices; each slice into
``segments_per_substep`` segments of seeded random lengths (the reference's
``randomize_substeps``). Segment j runs as one causal sequence ``[summaries so far] + tokens
+ [summary_length summary tokens]`` at positions 0, 1, ...; the summary tokens' inputs are the
new ``embed_summary`` rows, their final-norm outputs are the new summaries, appended to the
earlier ones. The loss is next-token cross entropy over the segments' tokens (the tokens of
consecutive segments form one stream, so a segment's last token predicts the next segment's
first). Gradients flow through the summaries within a substep; the summaries handed to the
next substep are detached and each substep is its own backward pass, as the reference's
``SubstepTrainer`` does (a :class:`~bench.training.method.Substeps` batch).

Pre-training reads the context as the token stream; fine-tuning appends
``Question: {q} Answer: {a}</s>`` to it (labels on the context and the answer, not the cue),
and the stream is cut as any other: answer tokens in a later segment than the context's read
it through the summaries, those sharing a segment with context tokens see them directly. The
checkpoint is a ``save_pretrained`` folder with ``summary_length``, ``accumulate_summary`` and
the ``LlamaAutoCompressorModel`` architecture in ``config.json`` and ``embed_summary.weight``
beside the LM weights.
"""

from __future__ import annotations

import itertools
import json
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bench.compressors.soft.autocompressor.checkpoint import (
    SUMMARY_WEIGHT,
    TRAINING_SEGMENT_LENGTH,
)
from bench.substrate.errors import InputError
from bench.training.config import TrainConfig
from bench.training.example import Example
from bench.training.lm_methods import (
    LM_SETTINGS,
    LmBuilt,
    LmMethod,
    lm_method_parts,
    load_lm,
    lora_model,
)
from bench.training.method import IGNORE, Substeps, TokenBatch, pad_rows
from bench.training.registry import Setting, TrainingMethod, register_training_method
from bench.training.strategy import writable

ARCHITECTURE = "LlamaAutoCompressorModel"
QA_PROMPT = "Question: {question} Answer:"


@dataclass(frozen=True)
class AutoCompressorCollator:
    """Tokenises examples into right-padded token streams cut into ``training_substeps``
    pieces, each with its seeded random segment lengths (:class:`Substeps`).

    Contexts start with ``<s>`` and are cut to ``max_context_tokens`` ids (``<s>`` counted);
    QA answers to ``max_answer_tokens``. The segment lengths are drawn from a generator
    seeded by ``seed`` and the batch's token ids, so a batch is cut the same way in every run,
    resumed or not, and on every process count."""

    tokenizer: Any
    max_context_tokens: int
    max_answer_tokens: int
    training_substeps: int
    segments_per_substep: int
    max_positions: int
    seed: int

    def example_ids(self, example: Example) -> tuple[list[int], list[int]]:
        ids: list[int] = self.tokenizer(example.context)["input_ids"][: self.max_context_tokens]
        labels = list(ids)
        if example.kind == "qa":
            cue = self.tokenizer(QA_PROMPT.format(question=(example.question or "").strip()),
                                 add_special_tokens=False)["input_ids"]
            answer = self.tokenizer(example.target, add_special_tokens=False)["input_ids"]
            answer = [*answer[: self.max_answer_tokens], int(self.tokenizer.eos_token_id)]
            ids += cue + answer
            labels += [IGNORE] * len(cue) + answer
        return ids, labels

    def stream(self, rows: Sequence[tuple[list[int], list[int]]]) -> TokenBatch:
        """The rows (ids, labels) right-padded with ``<s>`` (``valid`` 0 there)."""
        return pad_rows(rows, int(self.tokenizer.bos_token_id))

    def substeps(self, rows: Sequence[tuple[list[int], list[int]]]) -> Substeps:
        """The rows as one batch cut into substep pieces."""
        whole = self.stream(rows)
        generator = torch.Generator().manual_seed(
            zlib.crc32(whole.input_ids.numpy().tobytes(), self.seed))
        width = whole.input_ids.shape[1]
        edges = [int(edge) for edge in torch.linspace(0, width, self.training_substeps + 1)]
        pieces = []
        for start, end in itertools.pairwise(edges):
            lengths = random_segment_lengths(end - start, self.segments_per_substep,
                                             self.max_positions, generator)
            pieces.append(TokenBatch(whole.input_ids[:, start:end], whole.labels[:, start:end],
                                     whole.valid[:, start:end], tuple(lengths)))
        return Substeps(tuple(pieces), sum(piece.target_tokens for piece in pieces),
                        whole.tokens)

    def __call__(self, examples: Sequence[Example]) -> Substeps:
        return self.substeps([self.example_ids(example) for example in examples])


def random_segment_lengths(length: int, segments: int, max_positions: int,
                           generator: torch.Generator) -> list[int]:
    """``segments`` lengths summing to ``length``: each at least 2 (and long enough that none
    exceeds ``max_positions``), the rest split at seeded random break points."""
    if segments == 1:
        return [length]
    shortest = max(-(-(length - max_positions) // (segments - 1)), 2)
    free = length - shortest * segments
    if free < segments - 1:
        raise InputError(f"a slice of {length} tokens cannot be cut into {segments} segments "
                         "(--segments-per-substep); use longer contexts or fewer segments")
    cuts = torch.randperm(free, generator=generator)[: segments - 1].sort().values
    bounds = torch.cat([torch.tensor([0]), cuts, torch.tensor([free])])
    return [int(step) + shortest for step in bounds.diff()]


class AutoCompressorTrainingModel(nn.Module):
    """The LM and its ``embed_summary``: ``forward(piece, summaries)`` gives the summed token
    loss of one substep and the summaries after it (pass them, detached, to the next)."""

    def __init__(self, model: Any, summary_length: int) -> None:
        super().__init__()
        self.model = model
        hidden = model.get_input_embeddings().weight
        width = int(model.config.hidden_size)
        self.embed_summary = nn.Embedding(summary_length, width, dtype=hidden.dtype,
                                          device=hidden.device)
        eos = model.config.eos_token_id
        eos = eos[0] if isinstance(eos, list) else eos
        # the reference starts every summary row at EOS's embedding
        with torch.no_grad(), writable(hidden):
            self.embed_summary.weight[:] = hidden[int(eos)]

    def segment(self, softprompt: torch.Tensor, embeds: torch.Tensor, valid: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Hidden states of the segment's tokens and its new summary vectors."""
        batch, summary = embeds.shape[0], self.embed_summary.weight.shape[0]
        summary_in = self.embed_summary.weight[None].expand(batch, -1, -1)
        inputs = torch.cat([softprompt, embeds, summary_in], dim=1)
        ones = valid.new_ones(batch, softprompt.shape[1])
        mask = torch.cat([ones, valid, valid.new_ones(batch, summary)], dim=1)
        hidden = self.model.model(inputs_embeds=inputs, attention_mask=mask,
                                  use_cache=False).last_hidden_state
        start, end = softprompt.shape[1], hidden.shape[1] - summary
        return hidden[:, start:end], hidden[:, end:]

    def forward(self, piece: TokenBatch, summaries: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Summed token loss of one substep and the summaries after it."""
        embeds = self.model.get_input_embeddings()(piece.input_ids)
        softprompt = summaries if summaries is not None else \
            embeds.new_zeros(embeds.shape[0], 0, embeds.shape[2])
        states = []
        lengths = list(piece.lengths) or [piece.input_ids.shape[1]]
        for part, valid in zip(torch.split(embeds, lengths, dim=1),
                               torch.split(piece.valid, lengths, dim=1), strict=True):
            hidden, new = self.segment(softprompt, part, valid)
            states.append(hidden)
            softprompt = torch.cat([softprompt, new], dim=1)
        logits = self.model.lm_head(torch.cat(states, dim=1))[:, :-1].float()
        loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                           piece.labels[:, 1:].reshape(-1),
                                           ignore_index=IGNORE, reduction="sum")
        return loss, softprompt


def save_autocompressor(model: Any, embed_summary: torch.Tensor, tokenizer: Any,
                        out: Path, segment_length: int | None = None) -> Path:
    """Write the published layout: the LM (LoRA merged) with ``embed_summary.weight`` added to
    its safetensors and the AutoCompressor fields in ``config.json`` (with
    ``training_segment_length`` where ``segment_length`` is given: the compressor's default
    segment length)."""
    from safetensors.torch import load_file, save_file

    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    model.config.summary_length = int(embed_summary.shape[0])
    model.config.accumulate_summary = True
    model.config.segment_gradient_checkpointing = False
    if segment_length is not None:
        setattr(model.config, TRAINING_SEGMENT_LENGTH, segment_length)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    config_file = out / "config.json"  # save_pretrained names the class it saved
    config = json.loads(config_file.read_text("utf-8"))
    config["architectures"] = [ARCHITECTURE]
    config_file.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", "utf-8")
    weights = out / "model.safetensors"
    if not weights.is_file():
        raise InputError(f"{out}: save_pretrained wrote a sharded checkpoint; the "
                         "AutoCompressor export expects one model.safetensors")
    tensors = load_file(str(weights))
    tensors[SUMMARY_WEIGHT] = embed_summary.detach().cpu().contiguous()
    save_file(tensors, str(weights), metadata={"format": "pt"})
    tokenizer.save_pretrained(out)
    return out


def build_autocompressor(config: TrainConfig, cuda: bool) -> LmBuilt:
    """The LM (with LoRA) and its summary embeddings, the training module and the collate
    function."""
    tokenizer, model = load_lm(config, cuda)
    module = AutoCompressorTrainingModel(model, config.num_mem)
    if config.init_from:
        from bench.compressors.soft.autocompressor.checkpoint import load_summary_spec

        with torch.no_grad():
            module.embed_summary.weight[:] = load_summary_spec(model, config.init_from).embeddings
    wrapped = lora_model(model, config) if config.lora else model
    collate = AutoCompressorCollator(tokenizer, config.max_context_tokens,
                                     config.max_answer_tokens, config.training_substeps,
                                     config.segments_per_substep,
                                     int(model.config.max_position_embeddings), config.seed)
    return LmBuilt(module, tokenizer, wrapped, collate)


def training_segment_length(config: TrainConfig) -> int:
    """The mean length of the segments a run trains on: its contexts' tokens over the
    segments of all substeps."""
    return -(-config.max_context_tokens // (config.training_substeps
                                            * config.segments_per_substep))


def _save(built: LmBuilt, config: TrainConfig, out: Path) -> None:
    summary = built.module.get_parameter("embed_summary.weight")
    save_autocompressor(built.model, summary, built.tokenizer, out,
                        training_segment_length(config))


def _summary_embeddings(built: LmBuilt) -> list[nn.Parameter]:
    return [built.module.get_parameter("embed_summary.weight")]


def _one_backward_pass(config: TrainConfig) -> bool:
    """DeepSpeed steps the optimizer at every backward pass: one substep only."""
    return config.training_substeps == 1


AUTOCOMPRESSOR = LmMethod(build=build_autocompressor, save=_save,
                          external_parameters=_summary_embeddings,
                          supports_deepspeed=_one_backward_pass)

register_training_method(TrainingMethod(
    name="autocompressor",
    summary="fine-tunes the LM itself; --num-mem: summary length; writes the published "
            "checkpoint layout",
    parts=partial(lm_method_parts, AUTOCOMPRESSOR),
    settings={**LM_SETTINGS,
              "training_substeps": Setting("slices of each sequence, each its own backward "
                                           "pass; summaries passed on detached"),
              "segments_per_substep": Setting("segments (random lengths, seeded) per slice")},
    per_layer_fsdp=True))
