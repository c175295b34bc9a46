"""PISCO (Louis et al. 2025, naver/pisco): a compressor LM writes each document chunk into
``len // rate + 1`` vectors (its hidden states at appended ``<MEM>`` tokens, through an MLP
connector) that replace ``<MEM>`` placeholders in a LoRA-tuned decoder's chat prompt.

The target model is the decoder's base model; ``checkpoint=`` is a folder in the layout
naver/pisco's ``save_pretrained`` writes (see :mod:`.checkpoint`). The context is one
document (``split=paragraphs``: one per blank-line separated paragraph); a document's
compressor ids (BOS first) are cut into chunks of ``compressor_max_length`` ids
(``chunk_docs``, the reference's chunking mode) or truncated to that length. The chunks of
one context are compressed in one left-padded batch. QA requests are answered from the
reference's chat prompt (its own system prompt: the task's instruction is not shown),
regeneration requests from ``<AE>`` + the vectors + BOS. With ``query_dependent`` (OSCAR)
every document is compressed with the question before it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

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
from bench.compressors.soft._checkpoint_files import CheckpointFileError
from bench.compressors.soft._prompts import generation_eos_ids
from bench.compressors.soft.icae_v2.generate import GreedyResult, StopCheck, greedy_ids
from bench.compressors.soft.pisco.checkpoint import PiscoCheckpoint, read_checkpoint
from bench.compressors.soft.pisco.layout import (
    chunk_ids,
    clean_text,
    left_pad,
    memory_count,
    qa_messages,
    query_document,
    split_documents,
    with_memory,
)
from bench.compressors.soft.pisco.load import PiscoParts, from_checkpoint
from bench.generation import DecoderPrompt, GenerationOutput, GenerationSettings
from bench.records import CompressedContext, CompressedEmbeddings, CompressionStats

NAME = "pisco"


@dataclass(frozen=True)
class PiscoOptions:
    """Options of PISCO."""

    checkpoint: str | None = option(None, "the PISCO checkpoint folder",
                                    shown_default="required")
    compression_rate: int | None = option(
        None, "compressor ids per vector: each chunk of n ids gets n // rate + 1 vectors",
        accepts=Interval(1.0), shown_default="the checkpoint's compr_rate")
    compressor_max_length: int = option(128, "ids per chunk, BOS included (the reference's "
                                        "training configurations)", accepts=Interval(1.0))
    chunk_docs: bool = option(True, "cut longer documents into chunks (off: keep their first "
                              "compressor_max_length ids, as the reference does)")
    split: str = option("none", "none (the context is one document) or paragraphs")
    query_dependent: bool = option(False, "OSCAR's question-aware compression: \"Query: "
                                   "{q}\\n Document: {d}\" compressed instead of the document "
                                   "(for checkpoints fine-tuned that way)")
    batch_size: int = option(8, "requests per decoder batch", accepts=Interval(1.0))


@dataclass(frozen=True)
class CompressorRows:
    """The compressor rows of one context and their memory counts."""

    rows: list[list[int]]
    mems_per_chunk: list[int]
    mems_per_document: list[int]


class Pisco:
    """``pisco``: document vectors written into a LoRA-tuned decoder's input embeddings."""

    name = NAME
    version = "1"

    def __init__(self, target: TargetModel, options: PiscoOptions) -> None:
        _validate(options)
        if target.model is None:
            raise ValueError("pisco needs a neural target model (its decoder's base model)")
        if options.checkpoint is None:
            raise CheckpointFileError("pisco needs checkpoint=FOLDER (a PISCO checkpoint in "
                                      "the layout naver/pisco's save_pretrained writes)")
        self.target = target
        self.options = options
        self.checkpoint: PiscoCheckpoint = read_checkpoint(options.checkpoint)
        self.rate = options.compression_rate or self.checkpoint.compression_rate
        self.parts: PiscoParts = from_checkpoint(self.checkpoint, target.model)
        self.model = self.parts.model.eval()
        self.eos_ids = sorted({self.model.ids.eos,
                               *generation_eos_ids(self.parts.decoder_tokenizer.hf,
                                                   target.model)})

    def settings(self) -> dict[str, Any]:
        settings = asdict(self.options)
        settings.pop("batch_size")
        settings.update(checkpoint=str(self.checkpoint.path),
                        checkpoint_sha256=self.checkpoint.sha256, compression_rate=self.rate,
                        lora_r=self.checkpoint.lora_r,
                        compressor_mlp_hidden_dim=self.checkpoint.mlp_hidden)
        return settings

    def documents(self, request: CompressionRequest) -> list[str]:
        """The texts the compressor reads for a request (see :func:`request_documents`)."""
        return request_documents(request, self.options)

    def compressor_rows(self, documents: Sequence[str]) -> CompressorRows:
        """Each document's chunks (compressor ids, BOS first) with their ``<MEM>`` tokens."""
        tokenizer, length = self.parts.compressor_tokenizer, self.options.compressor_max_length
        rows: list[list[int]] = []
        per_chunk: list[int] = []
        per_document: list[int] = []
        for document in documents:
            ids = tokenizer.encode(document, special_tokens=True)
            chunks = chunk_ids(ids, length) if self.options.chunk_docs else [ids[:length]]
            counts = [memory_count(len(chunk), self.rate) for chunk in chunks]
            rows += [with_memory(chunk, self.model.compressor_mem, self.rate) for chunk in chunks]
            per_chunk += counts
            per_document.append(sum(counts))
        return CompressorRows(rows, per_chunk, per_document)

    def compress(self, requests: Sequence[CompressionRequest]) -> list[CompressedContext]:
        return [self._compress_one(request) for request in requests]

    @torch.no_grad()
    def embed_rows(self, rows: Sequence[Sequence[int]]) -> torch.Tensor:
        """The vectors of left-padded compressor rows (one batch)."""
        ids, mask = left_pad(rows, self.parts.compressor_tokenizer.pad_id)
        return self.model.compress(ids.to(self.model.device), mask.to(self.model.device))

    def _compress_one(self, request: CompressionRequest) -> CompressedEmbeddings:
        began = time.perf_counter()
        layout = self.compressor_rows(self.documents(request))
        vectors = self.embed_rows(layout.rows)
        stats = CompressionStats(self.target.count_tokens(request.context),
                                 int(vectors.shape[0]), time.perf_counter() - began,
                                 requested_rate=1.0 / self.rate)
        extra = {"mems_per_document": layout.mems_per_document,
                 "mems_per_chunk": layout.mems_per_chunk,
                 "compressor_tokens": [len(row) - n for row, n in
                                       zip(layout.rows, layout.mems_per_chunk, strict=True)]}
        return CompressedEmbeddings(vectors.detach(), stats, extra)

    def decoder_ids(self, compressed: CompressedEmbeddings, prompt: DecoderPrompt) -> list[int]:
        """The decoder's ids for one compressed context (``<MEM>`` placeholders)."""
        memories = int(compressed.embeddings.shape[0])
        if prompt.kind == "regeneration":
            return self.model.ids.regeneration_prefix(memories)
        if prompt.kind != "qa":
            raise ValueError(f"pisco: unknown prompt kind {prompt.kind!r}; expected qa or "
                             "regeneration")
        if prompt.question is None:
            raise ValueError("pisco: a QA prompt needs the question")
        per_document = list(compressed.extra.get("mems_per_document", [memories]))
        tokenizer = self.parts.decoder_tokenizer
        messages = qa_messages(per_document, clean_text(prompt.question), "")
        return tokenizer.encode(tokenizer.chat_text(messages), special_tokens=False)

    def decoder_input(self, compressed: CompressedContext, prompt: DecoderPrompt
                      ) -> torch.Tensor:
        """Decoder input vectors ``[length, hidden]`` of one compressed context."""
        if not isinstance(compressed, CompressedEmbeddings):
            raise TypeError(f"pisco decodes CompressedEmbeddings, got "
                            f"{type(compressed).__name__}")
        ids = torch.tensor([self.decoder_ids(compressed, prompt)], device=self.model.device)
        memory = compressed.embeddings.to(self.model.device)
        with torch.no_grad():
            return self.model.decoder_embeddings(ids, memory)[0]

    def generate_ids(self, items: Sequence[tuple[CompressedContext, DecoderPrompt]],
                     settings: GenerationSettings) -> list[GreedyResult]:
        """Greedy token ids of each item (EOS reported in ``stopped_at_eos``)."""
        results: list[GreedyResult] = []
        size = self.options.batch_size
        vocabulary = int(self.model.decoder.get_output_embeddings().weight.shape[0])
        for start in range(0, len(items), size):
            embeds = [self.decoder_input(c, p) for c, p in items[start:start + size]]
            results.extend(greedy_ids(self.model.decoder, embeds, settings.max_new_tokens,
                                      self.eos_ids, vocabulary, self._stop_check(settings)))
        return results

    def _stop_check(self, settings: GenerationSettings) -> StopCheck | None:
        if not settings.until:
            return None

        def hits_stop(ids: list[int]) -> bool:
            text = self.parts.decoder_tokenizer.decode(ids)
            return settings.cut_at_stop(text) != text

        return hits_stop

    def generate(self, items: Sequence[tuple[CompressedContext, DecoderPrompt]],
                 settings: GenerationSettings) -> list[GenerationOutput]:
        decode = self.parts.decoder_tokenizer.decode
        return [GenerationOutput(settings.cut_at_stop(decode(list(r.token_ids))),
                                 len(r.token_ids), r.seconds, r.ttft_seconds)
                for r in self.generate_ids(items, settings)]


def request_documents(request: CompressionRequest, options: PiscoOptions) -> list[str]:
    """The texts the compressor reads for a request, cleaned of special token strings."""
    documents = split_documents(request.context, options.split)
    if options.query_dependent:
        if request.question is None:
            raise ValueError("pisco: query_dependent compression needs the question")
        documents = [query_document(clean_text(request.question), d) for d in documents]
    return [clean_text(document) for document in documents]


def _validate(options: PiscoOptions) -> None:
    for field in ("compressor_max_length", "batch_size"):
        if getattr(options, field) < 1:
            raise ValueError(f"pisco: option {field} must be >= 1")
    if options.compression_rate is not None and options.compression_rate < 1:
        raise ValueError("pisco: option compression_rate must be >= 1")
    split_documents("", options.split)


def _uses_question(settings: Mapping[str, Any]) -> bool:
    return bool(settings.get("query_dependent"))


@register_compressor(NAME, Capabilities(Family.SOFT_EMBEDDINGS, question_aware=_uses_question,
                                        budget_options=("compression_rate",)))
def make_pisco(target: TargetModel, options: Mapping[str, Any]) -> Pisco:
    """PISCO: a compressor LM's memory vectors per document chunk in a LoRA-tuned decoder
    built on the target model."""
    return Pisco(target, parse_options(PiscoOptions, options, NAME))
