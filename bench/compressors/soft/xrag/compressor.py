"""xRAG (Cheng et al. 2024): each document becomes ONE input vector of the LLM.

``--model compressed --model_args pretrained=XRAG_MODEL,compressor=xrag[,retriever=...]``:
the target model is the xRAG model itself (e.g. ``Hannibal046/xrag-7b``, Mistral-7B-Instruct
with ``<pad>`` and ``<xRAG>`` added), loaded as a plain causal LM; its projector is read from
``checkpoint=`` (default: the target model's own folder or hub id,
:mod:`.checkpoint`).

Compression: the context is one document (``split=`` cuts it into several); the retriever
(a sentence embedder, ``retriever=``, default ``Salesforce/SFR-Embedding-Mistral``) embeds
each document (:mod:`.retriever`) and the projector maps each embedding to one vector in the
LLM's input space: ``[documents, hidden]``, the compressed form.

Decoding: the prompt (:mod:`.prompts`; QA: the tutorial's template, regeneration: the first
paraphrase instruction) holds one ``<xRAG>`` token per document; it is tokenised with BOS,
embedded, and the rows of the ``<xRAG>`` tokens are overwritten by the vectors in order
(never embedded as a word). Greedy decoding from those input vectors, positions ``0..L-1``.
The task's own instruction is not used: the model was tuned with these prompts.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
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
from bench.compressors.soft._prompts import generation_eos_ids
from bench.compressors.soft._torch import input_embedding
from bench.compressors.soft.autocompressor.checkpoint import weight_files, weights_digest
from bench.compressors.soft.autocompressor.compressor import model_location
from bench.compressors.soft.decode import DecoderItem, greedy_generate_in_batches
from bench.compressors.soft.xrag.checkpoint import (
    XragCheckpoint,
    XragCheckpointError,
    read_checkpoint,
)
from bench.compressors.soft.xrag.prompts import XRAG_TOKEN, qa_prompt, regeneration_prompt
from bench.compressors.soft.xrag.retriever import Retriever, load_retriever, split_by_tokens
from bench.generation import DecoderPrompt, GenerationOutput, GenerationSettings
from bench.records import CompressedContext, CompressedEmbeddings, CompressionStats
from bench.substrate.errors import InputError

NAME = "xrag"
DEFAULT_RETRIEVER = "Salesforce/SFR-Embedding-Mistral"
SPLITS = ("none", "paragraphs", "lines", "tokens")
PROMPT_KINDS = ("qa", "regeneration")
PARAGRAPH_BREAK = re.compile(r"\n[^\S\n]*\n")
"""A blank line (only spaces or tabs on it) between paragraphs."""


@dataclass(frozen=True)
class XragOptions:
    """Options of ``xrag``."""

    retriever: str = option(DEFAULT_RETRIEVER, "the sentence embedder, hub id or folder (the "
                            "released model's); it runs in the target model's dtype on its "
                            "device")
    checkpoint: str | None = option(None, "the xRAG model folder or hub id holding the "
                                    "projector", shown_default="the target model's own")
    split: str = option("none", "how the context becomes documents, one vector each: none "
                        "(the whole context), paragraphs (blank-line separated), lines "
                        "(non-empty lines) or tokens (pieces of retriever_max_length retriever "
                        "tokens, the reference's fine-tuning split)")
    retriever_max_length: int = option(180, "retriever tokens read per document (the "
                                       "reference's; a longer document is cut)",
                                       accepts=Interval(1.0))
    batch_size: int = option(8, "contexts per retriever batch and prompts per decoding batch",
                             accepts=Interval(1.0))


def xrag_token_id(tokenizer: Any, model_name: str) -> int:
    """The id of the ``<xRAG>`` token in the target model's tokenizer."""
    found = tokenizer.get_vocab().get(XRAG_TOKEN)
    if found is None:
        raise InputError(f"the tokenizer has no {XRAG_TOKEN} token; pretrained= must be an "
                         "xRAG model (e.g. Hannibal046/xrag-7b)", model_name,
                         field="pretrained")
    return int(found)


def split_documents(context: str, split: str, retriever: Retriever) -> list[str]:
    """The documents of ``context`` under ``split`` (see :class:`XragOptions`)."""
    if split == "none":
        documents = [context]
    elif split == "paragraphs":
        documents = [piece.strip() for piece in PARAGRAPH_BREAK.split(context) if piece.strip()]
    elif split == "lines":
        documents = [line.strip() for line in context.splitlines() if line.strip()]
    else:
        documents = split_by_tokens(retriever.tokenizer, context, retriever.max_length,
                                    max_tokens=None)
    return documents or [context]


class Xrag:
    """``xrag``: one projected retriever embedding per document, written over ``<xRAG>``."""

    name = NAME
    version = "1"

    def __init__(self, target: TargetModel, options: XragOptions, retriever: Retriever,
                 checkpoint: XragCheckpoint) -> None:
        model = target.model
        if model is None:
            raise ValueError(f"{NAME} needs the xRAG model as the neural target model")
        self.target = target
        self.model: Any = model
        self.options = options
        self.retriever = retriever
        self.checkpoint = checkpoint
        self.xrag_id = xrag_token_id(target.tokenizer, target.name)
        _check_sizes(checkpoint, int(model.config.hidden_size), retriever)
        like = input_embedding(model).weight
        self.projector = checkpoint.projector().to(device=like.device, dtype=like.dtype).eval()
        self.eos_ids = generation_eos_ids(target.tokenizer, model)

    @cached_property
    def _retriever_sha256(self) -> str:
        return weights_digest(tuple(weight_files(self.options.retriever).values()))

    def settings(self) -> dict[str, Any]:
        return {"retriever": self.options.retriever, "retriever_sha256": self._retriever_sha256,
                "retriever_max_length": self.options.retriever_max_length,
                "split": self.options.split,
                "projector_type": self.checkpoint.spec.projector_type,
                "projector_sha256": self.checkpoint.sha256,
                "projector_checkpoint": self.checkpoint.location,
                "xrag_token_id": self.xrag_id, "dtype": str(self.projector.first.weight.dtype)}

    def documents(self, context: str) -> list[str]:
        """The documents ``context`` is compressed as (one vector each)."""
        return split_documents(context, self.options.split, self.retriever)

    @torch.no_grad()
    def project(self, embeddings: torch.Tensor) -> torch.Tensor:
        """The LLM input vectors ``[documents, hidden]`` of retriever embeddings."""
        projected: torch.Tensor = self.projector(embeddings)
        return projected

    @torch.no_grad()
    def compress_documents(self, documents: Sequence[str]) -> torch.Tensor:
        """The vectors of ``documents``, in order."""
        return self.project(self.retriever.embed(documents))

    def compress(self, requests: Sequence[CompressionRequest]) -> list[CompressedContext]:
        results: list[CompressedContext] = []
        size = self.options.batch_size
        for start in range(0, len(requests), size):
            chunk = requests[start:start + size]
            began = time.perf_counter()
            documents = [self.documents(request.context) for request in chunk]
            vectors = self.compress_documents([d for docs in documents for d in docs])
            seconds = (time.perf_counter() - began) / len(chunk)
            offset = 0
            for request, docs in zip(chunk, documents, strict=True):
                rows = vectors[offset:offset + len(docs)]
                offset += len(docs)
                results.append(self._record(request.context, docs, rows, seconds))
        return results

    def _record(self, context: str, documents: Sequence[str], vectors: torch.Tensor,
                seconds: float) -> CompressedEmbeddings:
        stats = CompressionStats(self.target.count_tokens(context), len(documents), seconds)
        lengths = [len(self.retriever.tokenizer(doc)["input_ids"]) for doc in documents]
        limit = self.options.retriever_max_length
        extra = {"documents": len(documents),
                 "retriever_tokens": [min(n, limit) for n in lengths],
                 "documents_cut": sum(n > limit for n in lengths)}
        return CompressedEmbeddings(vectors.detach(), stats, extra)

    def prompt_text(self, documents: int, prompt: DecoderPrompt) -> str:
        """The decoder prompt over ``documents`` ``<xRAG>`` tokens."""
        if prompt.kind not in PROMPT_KINDS:
            raise ValueError(f"{NAME}: unknown prompt kind {prompt.kind!r}; expected one of "
                             f"{', '.join(PROMPT_KINDS)}")
        if prompt.kind == "regeneration":
            return regeneration_prompt(documents)
        if not prompt.question:
            raise ValueError(f"{NAME}: a QA prompt needs the question")
        return qa_prompt(documents, prompt.question)

    def prompt_ids(self, documents: int, prompt: DecoderPrompt) -> list[int]:
        """The decoder's token ids (BOS first, one ``<xRAG>`` id per document)."""
        ids: list[int] = self.target.tokenizer(self.prompt_text(documents, prompt))["input_ids"]
        return ids

    @torch.no_grad()
    def decoder_input(self, compressed: CompressedContext, prompt: DecoderPrompt
                      ) -> torch.Tensor:
        """The decoder's input vectors ``[length, hidden]``: the prompt's token embeddings
        with the ``<xRAG>`` rows overwritten by the compressed vectors, in order."""
        if not isinstance(compressed, CompressedEmbeddings):
            raise TypeError(f"{NAME} decodes CompressedEmbeddings, got "
                            f"{type(compressed).__name__}")
        vectors = compressed.embeddings
        embedding = input_embedding(self.model)
        ids = torch.tensor(self.prompt_ids(int(vectors.shape[0]), prompt),
                           device=embedding.weight.device)
        return overwrite_placeholders(embedding(ids), ids == self.xrag_id, vectors)

    def decoder_item(self, compressed: CompressedContext, prompt: DecoderPrompt) -> DecoderItem:
        return DecoderItem(prompt_ids=(), embeds=self.decoder_input_embeddings(compressed, prompt))

    def decoder_input_embeddings(self, compressed: CompressedContext, prompt: DecoderPrompt
                                 ) -> torch.Tensor:
        """What :meth:`generate` decodes from (:meth:`decoder_input`)."""
        return self.decoder_input(compressed, prompt)

    def stop_token_ids(self) -> list[int]:
        return list(self.eos_ids)

    def generate(self, items: Sequence[tuple[CompressedContext, DecoderPrompt]],
                 settings: GenerationSettings) -> list[GenerationOutput]:
        return greedy_generate_in_batches(self.model, self.target.tokenizer, items,
                                          self.decoder_item, self.options.batch_size,
                                          settings, self.eos_ids)


def overwrite_placeholders(embeds: torch.Tensor, placeholder: torch.Tensor,
                           vectors: torch.Tensor) -> torch.Tensor:
    """``embeds`` with the rows where ``placeholder`` is True replaced by ``vectors`` in
    order (the count must match)."""
    found = int(placeholder.sum())
    if found != int(vectors.shape[0]):
        raise ValueError(f"{NAME}: the input holds {found} {XRAG_TOKEN} tokens for "
                         f"{vectors.shape[0]} document vectors")
    filled = embeds.clone()
    filled[placeholder] = vectors.to(device=filled.device, dtype=filled.dtype)
    return filled


def _check_sizes(checkpoint: XragCheckpoint, hidden_size: int, retriever: Retriever) -> None:
    spec = checkpoint.spec
    if spec.hidden_size != hidden_size:
        raise XragCheckpointError(f"the projector writes vectors of {spec.hidden_size} values "
                                  f"but the target model's hidden size is {hidden_size}",
                                  checkpoint.location)
    if spec.retriever_hidden_size != retriever.hidden_size:
        raise XragCheckpointError(
            f"the projector reads embeddings of {spec.retriever_hidden_size} values but the "
            f"retriever {retriever.name} gives {retriever.hidden_size}", checkpoint.location,
            hint="pass the retriever the model was trained with as retriever=")


def _validate(options: XragOptions) -> None:
    if options.split not in SPLITS:
        raise InputError(f"must be one of {', '.join(SPLITS)}, got {options.split!r}",
                         field="split")
    for name in ("retriever_max_length", "batch_size"):
        if getattr(options, name) < 1:
            raise InputError(f"must be >= 1, got {getattr(options, name)}", field=name)


@register_compressor(NAME, Capabilities(Family.SOFT_EMBEDDINGS, budget_options=("split",),
                                        prompt_embeds=True))
def make_xrag(target: TargetModel, options: Mapping[str, Any]) -> Xrag:
    """xRAG: the target model is the xRAG LLM; ``retriever`` embeds each document."""
    parsed = parse_options(XragOptions, options, NAME)
    _validate(parsed)
    model = target.model
    if model is None:
        raise ValueError(f"{NAME} needs the xRAG model as the neural target model")
    location = parsed.checkpoint or model_location(target)
    own = parsed.checkpoint is None
    checkpoint = read_checkpoint(location, model.config if own else None)
    like = input_embedding(model).weight
    retriever = load_retriever(parsed.retriever, like.dtype, like.device,
                               parsed.retriever_max_length, "retriever= in --model_args")
    model.eval()  # type: ignore[no-untyped-call]
    return Xrag(target, parsed, retriever, checkpoint)


__all__ = ["DEFAULT_RETRIEVER", "Xrag", "XragOptions", "make_xrag", "split_documents"]
