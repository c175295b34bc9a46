"""The lm-eval task files of ``tasks/``, written from :mod:`bench.specs`.

``python -m bench tasks --write`` writes them; a test fails when the committed files differ.
"""

from __future__ import annotations

import json
from pathlib import Path

from bench import specs
from bench.lmeval.task_functions import task_folder
from bench.substrate.atomic import atomic_write_text

__all__ = ["task_files", "write_task_files", "write_task_folder"]

TAG = "compressbench"
GROUP_VERSION = "1.0"


def _metric_list(kind: specs.BenchmarkKind) -> list[str]:
    lines = ["metric_list:"]
    for metric in specs.metrics(kind, "efficiency", "size"):
        lines += [f"  - metric: {metric.name}",
                  f"    aggregation: {metric.aggregation}",
                  f"    higher_is_better: {str(metric.higher_is_better).lower()}"]
    return lines


def _task_file(spec: specs.BenchmarkSpec, task: str, length: int | None) -> str:
    kind = spec.kind
    data = f"benchmark: {spec.name}" if length is None else f"length: {length}"
    lines = [
        f"task: {task}",
        f"tag: {TAG}",
        f"custom_dataset: !function utils.load_{kind}",
        "dataset_kwargs:",
        f"  {data}",
        "output_type: generate_until",
        "test_split: test",
        f"doc_to_text: !function utils.doc_to_text_{kind}",
        f"doc_to_target: !function utils.doc_to_target_{kind}",
        f"process_results: !function utils.process_{kind}",
        "generation_kwargs:",
        f"  until: {json.dumps(list(spec.stop))}",
        f"  max_gen_toks: {spec.max_gen_toks(length)}",
        "  do_sample: false",
        *_metric_list(kind),
        "metadata:",
        f"  version: {spec.version}",
    ]
    return "\n".join(lines) + "\n"


def _group_file(group: str, tasks: list[str], kind: specs.BenchmarkKind) -> str:
    scores = [m for m in specs.metrics(kind) if m.style == specs.DEFAULT_STYLE]
    lines = [f"group: {group}", "task:", *(f"  - {task}" for task in tasks),
             "aggregate_metric_list:"]
    for metric in scores:
        lines += [f"  - metric: {metric.name}", "    weight_by_size: false"]
    lines += ["metadata:", f"  version: {GROUP_VERSION}"]
    return "\n".join(lines) + "\n"


def task_files() -> dict[str, str]:
    """File name -> text of every task and group file the declared benchmarks make."""
    files: dict[str, str] = {}
    for spec in specs.benchmarks():
        tasks = spec.task_lengths()
        for task, length in tasks.items():
            files[f"{task}.yaml"] = _task_file(spec, task, length)
        if spec.kind == "regeneration":
            files[f"{spec.task}.yaml"] = _group_file(spec.task, list(tasks), spec.kind)
    qa = [spec.task for spec in specs.benchmarks("qa")]
    if qa:
        files[f"{specs.QA_GROUP}.yaml"] = _group_file(specs.QA_GROUP, qa, "qa")
    return files


def write_task_files(folder: Path) -> list[str]:
    """Write the task files into ``folder`` and remove the YAML files no spec makes; returns
    the names of the files written or removed (those already up to date are left alone)."""
    files = task_files()
    changed = []
    for name, text in sorted(files.items()):
        path = folder / name
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            atomic_write_text(path, text)
            changed.append(name)
    for path in sorted(folder.glob("*.yaml")):
        if path.name not in files:
            path.unlink()
            changed.append(path.name)
    return changed


def write_task_folder() -> str:
    """``python -m bench tasks --write``: update the task folder; what was done, in words."""
    folder = task_folder()
    changed = write_task_files(folder)
    if not changed:
        return f"task files in {folder} are up to date"
    return f"task files in {folder}: updated {', '.join(changed)}"
