"""What ``pisco`` compresses for a request: documents, OSCAR's query-dependent mode, and the
capabilities it declares."""

from __future__ import annotations

import dataclasses

import pytest

from bench.compressors._api import CompressionRequest, Family, capabilities_of
from bench.compressors.soft.pisco.compressor import PiscoOptions, request_documents

CONTEXT = "Tom had a <MEM> ball.\n\n  \nIt was red."


def test_paragraphs_are_documents_and_special_strings_are_broken() -> None:
    request = CompressionRequest(CONTEXT, "What did Tom have?")
    assert request_documents(request, PiscoOptions()) == [CONTEXT.replace("<MEM>", "< MEM >")]
    assert request_documents(request, PiscoOptions(split="paragraphs")) == [
        "Tom had a < MEM > ball.", "It was red."]


def test_query_dependent_documents_carry_the_question() -> None:
    options = PiscoOptions(split="paragraphs", query_dependent=True)
    documents = request_documents(CompressionRequest(CONTEXT, "<MEM>?"), options)
    assert documents == ["Query: < MEM >?\n Document: Tom had a < MEM > ball.",
                         "Query: < MEM >?\n Document: It was red."]
    with pytest.raises(ValueError, match="needs the question"):
        request_documents(CompressionRequest(CONTEXT), options)


def test_declared_capabilities() -> None:
    capabilities = capabilities_of("pisco")
    assert capabilities.family is Family.SOFT_EMBEDDINGS
    assert capabilities.budget_options == ("compression_rate",)
    assert {f.name for f in dataclasses.fields(PiscoOptions)} >= set(capabilities.budget_options)
    assert not capabilities.uses_question({"query_dependent": False})
    assert capabilities.uses_question({"query_dependent": True})
