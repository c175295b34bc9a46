"""``python -m bench.build_arxivqa``: generate ArxivQA with an LLM (see data_builders.arxivqa)."""

from data_builders.arxivqa.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
