"""AutoCompressor summaries: compress token segments into summary vectors, oldest first.

Segment ``j`` of a context runs as one causal sequence
``[softprompt_j] + segment tokens + [summary tokens]`` at positions ``0, 1, 2, ...``, where the
summary tokens' inputs are the rows of ``embed_summary`` and ``softprompt_j`` holds the
summaries of the earlier segments, oldest first (or only the last segment's, without
``accumulate_summary``). The new summaries are the final-norm hidden states at the summary
positions, fed back as input vectors unchanged. Contexts of a batch are left-padded per
segment step with every real input at the position it has alone, so batching does not change
the vectors beyond float rounding.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from bench.compressors.soft._torch import input_embedding
from bench.compressors.soft.autocompressor.checkpoint import SummarySpec


def chunk_ids(tokenizer: PreTrainedTokenizerBase, chunks: Sequence[str]) -> list[list[int]]:
    """Token ids of context chunks compressed one after another.

    The first chunk is tokenized with the tokenizer's special tokens (Llama: ``<s>`` first),
    later chunks without, as the reference's ``evaluate_icl.py`` tokenizes its chunks.
    """
    rows: list[list[int]] = []
    for index, chunk in enumerate(chunks):
        ids: list[int] = tokenizer(chunk, add_special_tokens=index == 0)["input_ids"]
        rows.append(list(ids))
    return rows


def split_segments(ids: Sequence[int], lengths: int | Sequence[int] | None) -> list[list[int]]:
    """Cut ``ids`` into segments as ``torch.split`` does in the reference.

    ``None``: one segment; an int ``n``: segments of ``n`` tokens, the last one shorter; a
    list: exactly these lengths, which must add up to ``len(ids)``.
    """
    if lengths is None:
        return [list(ids)]
    if isinstance(lengths, int):
        if lengths < 1:
            raise ValueError(f"segment length must be >= 1, got {lengths}")
        return [list(ids[start:start + lengths]) for start in range(0, len(ids), lengths)] \
            or [[]]
    if sum(lengths) != len(ids) or any(length < 0 for length in lengths):
        raise ValueError(f"segment lengths {list(lengths)} do not split {len(ids)} tokens")
    segments: list[list[int]] = []
    start = 0
    for length in lengths:
        segments.append(list(ids[start:start + length]))
        start += length
    return segments


class SummaryEncoder:
    """Runs the AutoCompressor's segment recursion on a loaded causal LM."""

    def __init__(self, model: PreTrainedModel, spec: SummarySpec) -> None:
        self.model = model
        self.spec = spec

    @torch.no_grad()
    def compress(self, contexts: Sequence[Sequence[Sequence[int]]],
                 softprompts: Sequence[torch.Tensor | None] | None = None) -> list[torch.Tensor]:
        """The softprompt ``[n, hidden]`` of every context (a list of id segments).

        ``softprompts`` (one per context, or None) are prepended to the first segment as a
        reference call with ``softprompt=`` does; the result then starts with them.
        """
        hidden = self.spec.embeddings.shape[1]
        empty = self.spec.embeddings.new_zeros(0, hidden)
        current = [empty if sp is None else sp.to(empty)
                   for sp in (softprompts or [None] * len(contexts))]
        if len(current) != len(contexts):
            raise ValueError("compress needs one softprompt (or None) per context")
        steps = max(len(segments) for segments in contexts)
        for step in range(steps):
            rows = [row for row, segments in enumerate(contexts) if step < len(segments)]
            summaries = self._segment_step([current[row] for row in rows],
                                           [contexts[row][step] for row in rows])
            for row, new in zip(rows, summaries, strict=True):
                current[row] = torch.cat([current[row], new]) if self.spec.accumulate else new
        return current

    def _segment_step(self, softprompts: Sequence[torch.Tensor],
                      segments: Sequence[Sequence[int]]) -> list[torch.Tensor]:
        """Summaries ``[summary_length, hidden]`` of one segment of each row."""
        embedding = input_embedding(self.model)
        like = embedding.weight
        rows = []
        for softprompt, segment in zip(softprompts, segments, strict=True):
            ids = torch.tensor(list(segment), dtype=torch.long, device=like.device)
            rows.append(torch.cat([softprompt, embedding(ids), self.spec.embeddings]))
        length = max(row.shape[0] for row in rows)
        inputs = like.new_zeros(len(rows), length, like.shape[1])
        mask = torch.zeros(len(rows), length, dtype=torch.long, device=like.device)
        positions = torch.zeros(len(rows), length, dtype=torch.long, device=like.device)
        for index, row in enumerate(rows):
            size = row.shape[0]
            inputs[index, length - size:] = row
            mask[index, length - size:] = 1
            positions[index, length - size:] = torch.arange(size, device=like.device)
        base = self.model.get_decoder()  # type: ignore[no-untyped-call]
        out = base(inputs_embeds=inputs, attention_mask=mask, position_ids=positions,
                   use_cache=False)
        n = self.spec.summary_length
        return [state for state in out.last_hidden_state[:, length - n:]]
