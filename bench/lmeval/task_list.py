"""``python -m bench tasks``: the compressbench lm-eval tasks, from the declared benchmarks,
with the prepared data each needs and whether the data directory holds it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from bench import specs
from bench.lmeval.task_functions import task_folder
from bench.prepare.data_dir import benchmark_dir, data_root

__all__ = ["TaskEntry", "format_task_list", "read_tasks"]


@dataclass(frozen=True)
class TaskEntry:
    """One task or group of the task folder."""

    name: str
    members: tuple[str, ...] = ()
    benchmark: str | None = None
    length: int | None = None

    @property
    def is_group(self) -> bool:
        return bool(self.members)


def read_tasks() -> list[TaskEntry]:
    """The tasks and groups of the declared benchmarks: groups first, then tasks, each sorted
    by name (the task folder holds one file for each, see :mod:`bench.lmeval.task_files`)."""
    entries = []
    for spec in specs.benchmarks():
        tasks = spec.task_lengths()
        entries += [TaskEntry(task, benchmark=spec.name, length=length)
                    for task, length in tasks.items()]
        if spec.kind == "regeneration":
            entries.append(TaskEntry(spec.task, members=tuple(tasks)))
    qa = tuple(spec.task for spec in specs.benchmarks("qa"))
    if qa:
        entries.append(TaskEntry(specs.QA_GROUP, members=qa))
    return sorted(entries, key=lambda entry: (not entry.is_group, entry.name))


def _data_state(entry: TaskEntry, root: Path) -> str:
    assert entry.benchmark is not None
    folder = benchmark_dir(entry.benchmark, root)
    state = "prepared" if (folder / "test.parquet").is_file() else "not prepared"
    length = ""
    if entry.length is not None:
        length = f", texts of {entry.length} tokens"
        if state == "prepared" and entry.length not in _prepared_lengths(folder):
            state = "prepared without this length"
    return f"data {entry.benchmark}{length}: {state}"


def _prepared_lengths(folder: Path) -> list[int]:
    """The lengths a prepared regeneration folder's manifest records (none if unreadable)."""
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        return [int(length) for length in manifest["args"]["lengths"]]
    except (OSError, ValueError, KeyError, TypeError):
        return []


def format_task_list(root: Path | None = None) -> str:
    """The listing printed by ``python -m bench tasks``."""
    root = root or data_root()
    entries = read_tasks()
    width = max(len(entry.name) for entry in entries)
    lines = [f"compressbench tasks (task folder {task_folder()}; data directory {root}, "
             f"from $COMPRESSBENCH_DATA or the user cache):"]
    for entry in entries:
        detail = (f"group of {', '.join(entry.members)}" if entry.is_group
                  else _data_state(entry, root))
        lines.append(f"  {entry.name:<{width}}  {detail}")
    lines.append("prepare missing data with: python -m bench.prepare BENCHMARK --source ... "
                 f"--tokenizer TARGET_MODEL --out {root}")
    return "\n".join(lines)
