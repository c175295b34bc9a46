"""Stages 4-5, answer and score inside lm-evaluation-harness: the ``compressed`` and
``compressed_reader`` models, the task functions, the plug-in hook and the in-process runner;
:mod:`bench.lmeval.adapter` holds every use of lm-eval beyond its documented API."""
