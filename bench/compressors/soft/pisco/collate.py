"""PISCO's training batches, laid out as the reference collators lay them out.

Pretraining (regeneration examples) mixes, by ``ae_ratio``, auto-encoding (the text, BOS
first and cut to ``decoder_max_length`` ids, compressed as one chunk up to 64 ids and in
random chunks of 80-100% of ``compressor_max_length`` ids beyond; the decoder regenerates
the text after ``<AE>`` + ``<MEM>``s + BOS) and text continuation (a part of the text
compressed between a few clear ids and the rest). Every id but ``<AE>``, ``<MEM>``, BOS and
padding is a target there, the clear ids before the memory included: the reference also
masks everything up to the last ``<MEM>``, but only after the ``<MEM>`` labels are cleared,
so that step masks nothing and is left out here. Fine-tuning (QA)
compresses the context's documents (``split``) and trains the answer after the chat prompt.
Compressor rows of the whole batch are padded together on the left, decoder rows too; the
random draws come from ``seed`` and the batch's texts, so a batch is laid out the same way
in every run.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

from bench.compressors.soft.pisco.layout import (
    MEM_TOKEN,
    SHORT_TEXT,
    DecoderIds,
    chunk_ids,
    clean_text,
    left_pad,
    mask_before_answer,
    memory_count,
    qa_messages,
    query_document,
    random_chunks,
    regeneration_text,
    split_documents,
    with_memory,
)
from bench.compressors.soft.pisco.model import PiscoBatch
from bench.compressors.soft.pisco.tokens import PiscoTokenizer
from bench.training.example import Example

CLEAR_IDS = 32
"""Continuation keeps up to this many ids (fewer than 32, drawn) in clear before the
compressed part."""


@dataclass(frozen=True)
class Lengths:
    """Rate and lengths of the layout."""

    compression_rate: int
    compressor_max_length: int
    decoder_max_length: int


@dataclass(frozen=True)
class PiscoExample:
    """One collated example: its compressor rows and its decoder ids."""

    rows: list[list[int]]
    decoder_ids: list[int]
    prefix_length: int | None = None
    """QA: the prompt's length with an empty answer."""


@dataclass(frozen=True)
class PiscoCollator:
    """Examples of one kind into a :class:`PiscoBatch`."""

    compressor: PiscoTokenizer
    decoder: PiscoTokenizer
    compressor_mem: int
    lengths: Lengths
    ae_ratio: float = 0.5
    chunk_docs: bool = True
    split: str = "none"
    query_dependent: bool = False
    seed: int = 0

    @property
    def ids(self) -> DecoderIds:
        return self.decoder.decoder_ids()

    def rows(self, chunks: Sequence[Sequence[int]]) -> tuple[list[list[int]], int]:
        """Compressor rows of ``chunks`` and their total ``<MEM>`` count."""
        rate = self.lengths.compression_rate
        rows = [with_memory(chunk, self.compressor_mem, rate) for chunk in chunks]
        return rows, sum(memory_count(len(chunk), rate) for chunk in chunks)

    def autoencoding(self, text: str, rng: random.Random) -> PiscoExample:
        ids = self.compressor.encode(text, special_tokens=True)[:self.lengths.decoder_max_length]
        chunks = [ids] if len(ids) <= SHORT_TEXT else \
            random_chunks(ids, self.lengths.compressor_max_length, rng)
        rows, memories = self.rows(chunks)
        decoder_text = regeneration_text(memories, self.decoder.bos_text, self.decoder.eos_text,
                                         text)
        return PiscoExample(rows, self.decoder_ids(decoder_text))

    def continuation(self, text: str, rng: random.Random) -> PiscoExample:
        lengths = self.lengths
        ids = self.compressor.encode(text, special_tokens=True)
        ids = ids[:lengths.compressor_max_length + lengths.decoder_max_length]
        clear = rng.randrange(CLEAR_IDS)
        cut = min(clear + lengths.compressor_max_length, len(ids) // 2)
        past, future = ids[:cut], ids[cut:]
        split = min(clear, len(past) // 2)
        rows, memories = self.rows([past[split:]])
        decoder_text = (self.decoder.bos_text + self.compressor.decode_all(past[:split])
                        + MEM_TOKEN * memories + self.compressor.decode_all(future)
                        + self.decoder.eos_text)
        return PiscoExample(rows, self.decoder_ids(decoder_text))

    def question_answer(self, example: Example) -> PiscoExample:
        documents = split_documents(example.context, self.split)
        return self.documents_answer(documents, example.question or "", example.target)

    def documents_answer(self, documents: Sequence[str], question: str, answer: str
                         ) -> PiscoExample:
        """A QA example over several documents (the answer after the chat prompt)."""
        question = clean_text(question)
        if self.query_dependent:
            documents = [query_document(question, document) for document in documents]
        length = self.lengths.compressor_max_length
        rows: list[list[int]] = []
        per_document: list[int] = []
        for document in documents:
            ids = self.compressor.encode(clean_text(document), special_tokens=True)
            document_rows, memories = self.rows(
                chunk_ids(ids, length) if self.chunk_docs else [ids[:length]])
            rows += document_rows
            per_document.append(memories)
        prompt = self.decoder.chat_text(qa_messages(per_document, question, clean_text(answer)))
        prefix = self.decoder.chat_text(qa_messages(per_document, question, ""))
        return PiscoExample(rows, self.decoder_ids(prompt),
                            len(self.decoder.encode(prefix, special_tokens=False)))

    def decoder_ids(self, text: str) -> list[int]:
        return self.decoder.encode(text, special_tokens=False)[:self.lengths.decoder_max_length]

    def example(self, example: Example, rng: random.Random) -> PiscoExample:
        if example.kind == "qa":
            return self.question_answer(example)
        text = clean_text(example.context)
        if rng.random() < self.ae_ratio:
            return self.autoencoding(text, rng)
        return self.continuation(text, rng)

    def __call__(self, examples: Sequence[Example]) -> PiscoBatch:
        texts = "\0".join(example.context for example in examples).encode("utf-8")
        rng = random.Random(zlib.crc32(texts, self.seed & 0xFFFFFFFF))
        return self.batch([self.example(example, rng) for example in examples])

    def batch(self, collated: Sequence[PiscoExample]) -> PiscoBatch:
        """The examples' rows padded on the left, with their labels."""
        ids = self.ids
        compressor_ids, compressor_mask = left_pad(
            [row for example in collated for row in example.rows], self.compressor.pad_id)
        decoder_ids, decoder_mask = left_pad([e.decoder_ids for e in collated], ids.pad)
        labels = decoder_ids.clone()
        if collated[0].prefix_length is not None:
            prefixes = [e.prefix_length or 0 for e in collated]
            labels = ids.mask_special(mask_before_answer(labels, prefixes, ids.pad))
        else:
            labels = ids.mask_special(labels)
        return PiscoBatch(compressor_ids, compressor_mask, decoder_ids, decoder_mask, labels)
