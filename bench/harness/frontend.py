"""Turns requests' prompts into compressed prompts, compressing each distinct context once."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from tqdm import tqdm

from bench.compressors import Capabilities, CompressionRequest, Compressor, TargetModel
from bench.generation import DecoderPrompt
from bench.harness.compression_cache import (
    CompressionCache,
    cache_key,
    checkpoint_digest,
    tokenizer_identity,
)
from bench.records import CompressedContext, CompressedText
from bench.results_record import CompressorRecord
from bench.substrate.errors import InputError

logger = logging.getLogger(__name__)


class PromptSource(Protocol):
    """One request as the front end reads it: the rendered prompt and its document."""

    @property
    def text(self) -> str: ...

    @property
    def doc(self) -> dict[str, Any]: ...

    @property
    def task_name(self) -> str: ...

    @property
    def doc_id(self) -> int: ...


@dataclass(frozen=True)
class PromptParts:
    """A rendered prompt split around its context."""

    prefix: str
    context: str
    suffix: str
    instruction: str


def split_prompt(prompt: str, doc: dict[str, Any], where: str) -> PromptParts:
    """Locate ``doc["context"]`` in the rendered ``prompt`` (its last occurrence)."""
    context = doc.get("context")
    if not isinstance(context, str):
        raise InputError(f"{where}: the document has no string field 'context'; compressbench "
                         "tasks keep the context apart from the question")
    start = prompt.rfind(context)
    if start < 0:
        raise InputError(f"{where}: the rendered prompt does not contain the document's context")
    return PromptParts(prompt[:start], context, prompt[start + len(context):],
                       str(doc.get("instruction", "")))


@dataclass(frozen=True)
class PreparedRequest:
    """One request after compression: a text prompt, or a soft form with its decoder prompt."""

    doc: dict[str, Any]
    parts: PromptParts
    compressed: CompressedContext
    cached: bool
    context_cut_tokens: int

    def text_prompt(self) -> str | None:
        """The prompt with the context replaced, or None for soft compressions."""
        if not isinstance(self.compressed, CompressedText):
            return None
        prefix = self.parts.prefix
        if not self.compressed.keep_instruction and self.parts.instruction:
            prefix = prefix.replace(self.parts.instruction, "", 1).lstrip()
        return f"{prefix}{self.compressed.text}{self.parts.suffix}"

    def decoder_prompt(self) -> DecoderPrompt:
        question = self.doc.get("question")
        return DecoderPrompt(kind=str(self.doc.get("kind", "qa")), prefix=self.parts.prefix,
                             suffix=self.parts.suffix, question=question or None)


class CompressionFrontEnd:
    """Compresses the contexts of requests' prompts, once per distinct context."""

    def __init__(self, compressor: Compressor, capabilities: Capabilities, target: TargetModel,
                 cache: CompressionCache | None, batch_size: int = 1) -> None:
        self.compressor = compressor
        self.capabilities = capabilities
        self.target = target
        self.cache = cache
        self.batch_size = max(1, batch_size)
        settings = compressor.settings()
        self.question_aware = capabilities.uses_question(settings)
        self.identity = {
            "compressor": compressor.name,
            "version": compressor.version,
            "settings": settings,
            "checkpoint": checkpoint_digest(settings.get("checkpoint")),
            "tokenizer": tokenizer_identity(target.tokenizer),
        }
        self.contexts_cut = 0
        self.compressions = 0

    def compressor_record(self) -> CompressorRecord:
        """The compressor as results record it, with what its registration declared."""
        return CompressorRecord(
            self.compressor.name, self.compressor.version, self.compressor.settings(),
            family=self.capabilities.family.value, question_aware=self.question_aware,
            budget_options=self.capabilities.budget_options)

    def prepare(self, requests: Sequence[PromptSource], max_prompt_tokens: int | None = None
                ) -> list[PreparedRequest]:
        """Compress the contexts of ``requests``, in request order."""
        parts = [split_prompt(req.text, req.doc, f"task {req.task_name}, doc {req.doc_id}")
                 for req in requests]
        cut = [self._fit(p, max_prompt_tokens) for p in parts]
        parts = [p for p, _ in cut]
        keys = [self._key(p, req.doc) for p, req in zip(parts, requests, strict=True)]
        done = self._compress_distinct(parts, keys, requests)
        return [PreparedRequest(req.doc, p, done[k][0], done[k][1], n_cut)
                for req, p, k, (_, n_cut) in zip(requests, parts, keys, cut, strict=True)]

    def _key(self, parts: PromptParts, doc: dict[str, Any]) -> str:
        question = doc.get("question") if self.question_aware else None
        return cache_key(self.identity, parts.context, question, self._frame(parts))

    def _frame(self, parts: PromptParts) -> tuple[str, str | None] | None:
        """The prompt around the context for a method that reads it: the prefix, and the
        suffix (it holds the question) only for a question-aware one."""
        if not self.capabilities.reads_prompt:
            return None
        return parts.prefix, parts.suffix if self.question_aware else None

    def _fit(self, parts: PromptParts, max_prompt_tokens: int | None) -> tuple[PromptParts, int]:
        """Cut the context (keeping its start) so that the whole prompt fits the window."""
        if max_prompt_tokens is None:
            return parts, 0
        tokenizer = self.target.tokenizer
        frame = self.target.count_tokens(parts.prefix + parts.suffix)
        encoded = tokenizer(parts.context, add_special_tokens=False, return_offsets_mapping=True)
        budget = max(0, max_prompt_tokens - frame - 2)
        if len(encoded["input_ids"]) <= budget:
            return parts, 0
        end = encoded["offset_mapping"][budget - 1][1] if budget > 0 else 0
        removed = len(encoded["input_ids"]) - budget
        logger.warning("context of %d tokens cut to %d to fit the model window",
                       len(encoded["input_ids"]), budget)
        self.contexts_cut += 1
        cut = PromptParts(parts.prefix, parts.context[:end], parts.suffix, parts.instruction)
        return cut, removed

    def _compress_distinct(self, parts: Sequence[PromptParts], keys: Sequence[str],
                           requests: Sequence[PromptSource]
                           ) -> dict[str, tuple[CompressedContext, bool]]:
        done: dict[str, tuple[CompressedContext, bool]] = {}
        todo: dict[str, CompressionRequest] = {}
        for p, key, req in zip(parts, keys, requests, strict=True):
            if key in done or key in todo:
                continue
            cached = self.cache.get(key, self.target.device) if self.cache else None
            if cached is not None:
                done[key] = (cached, True)
            else:
                prefix, suffix = self._frame(p) or (None, None)
                todo[key] = CompressionRequest(p.context, req.doc.get("question") or None,
                                               p.instruction or None, prefix, suffix)
        pending = list(todo.items())
        bar = tqdm(total=len(pending), desc=f"compressing ({self.compressor.name})",
                   disable=len(pending) < 2)
        for start in range(0, len(pending), self.batch_size):
            batch = pending[start:start + self.batch_size]
            began = time.perf_counter()
            results = self.compressor.compress([request for _, request in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"compressor {self.compressor.name!r} returned {len(results)} "
                                   f"results for {len(batch)} contexts")
            logger.debug("compressed %d contexts in %.3fs", len(batch), time.perf_counter() - began)
            for (key, _), result in zip(batch, results, strict=True):
                done[key] = (result, False)
                if self.cache is not None:
                    self.cache.put(key, result)
            self.compressions += len(batch)
            bar.update(len(batch))
        bar.close()
        return done
