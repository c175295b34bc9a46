"""Stage 2, prepare: read MRQA files and corpora, write prepared benchmarks (Parquet + card +
manifest). ``python -m bench.prepare`` is the command; :mod:`bench.prepare.cli` its code."""
