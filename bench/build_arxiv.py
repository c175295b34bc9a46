"""``python -m bench.build_arxiv``: build the date-split Arxiv Corpus (see data_builders.arxiv)."""

from data_builders.arxiv.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
