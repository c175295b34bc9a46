"""Functions referenced by the task YAML files (``!function utils.NAME``)."""

from bench.lmeval.task_functions import (
    doc_to_target_qa,
    doc_to_target_regeneration,
    doc_to_text_qa,
    doc_to_text_regeneration,
    load_qa,
    load_regeneration,
    process_qa,
    process_regeneration,
)

__all__ = [
    "doc_to_target_qa",
    "doc_to_target_regeneration",
    "doc_to_text_qa",
    "doc_to_text_regeneration",
    "load_qa",
    "load_regeneration",
    "process_qa",
    "process_regeneration",
]
