"""The ``compressbench_qa`` evaluate module (loaded by path with ``evaluate.load``)."""
