"""The Arxiv Corpus builder: date-split arXiv abstracts with regeneration length groups."""

from data_builders.arxiv.build import build
from data_builders.arxiv.config import BuildConfig, BuildResult
from data_builders.arxiv.records import Paper
from data_builders.arxiv.splits import Windows

__all__ = ["BuildConfig", "BuildResult", "Paper", "Windows", "build"]
