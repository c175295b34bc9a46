"""What every package of the project builds on: ``bench``, ``data_builders`` and
``leaderboard`` write, hash, check and report through these modules alone.

- :mod:`.atomic`: atomic file and folder writes (and the kill switch the tests use);
- :mod:`.hashing`: SHA-256 of bytes and files;
- :mod:`.manifest`: the ``manifest.json`` of an output folder, written and verified;
- :mod:`.parquet`: the deterministic Parquet writer;
- :mod:`.errors`: the root of the project's errors (:class:`~.errors.CompressbenchError`),
  bad input as one line, exit statuses, :func:`~.errors.run_cli`;
- :mod:`.help`: the ``--help`` formatter that shows defaults and choices.

The package imports none of them, so that importing one costs only what it needs.
"""
