"""The ``compressbench_regeneration`` evaluate module (loaded by path with ``evaluate.load``)."""
