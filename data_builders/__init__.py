"""Dataset builders: the unseen Arxiv Corpus (``data_builders.arxiv``) and ArxivQA
(``data_builders.arxivqa``)."""

__all__ = ["BUILDER_VERSION"]

BUILDER_VERSION = "1.0.0"
