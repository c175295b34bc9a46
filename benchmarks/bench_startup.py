"""What the lm-eval plug-in adds to the start-up of an ``lm_eval`` run that does not use it.

    python benchmarks/bench_startup.py [--runs 5] [--limit 1] [--model-dir DIR --data-dir DIR]

Prints:
- the imports that the autoload adds to those of lm-eval's CLI package (``python -X importtime``
  with ``COMPRESSBENCH_LM_EVAL=1`` against ``=0``; median of ``--runs``);
- the imports the installed ``.pth`` hook makes in every Python process;
- the wall time of ``lm_eval --model hf --tasks compressed_squad --limit 1`` with the plug-in
  (autoloaded) and without it (``COMPRESSBENCH_LM_EVAL=0`` plus ``--include_path`` to the task
  folder), alternating which goes first, median of ``--runs``, and the difference
  (target <= 0.3 s); also the runs' CPU time (user + system), which other processes on a
  shared machine disturb far less than the wall time.

Without ``--model-dir``/``--data-dir`` the demo's tiny model and data are built in a temporary
folder. Timings on a shared machine are noisy: compare medians, not single runs.
"""

from __future__ import annotations

import argparse
import os
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

TARGET_SECONDS = 0.3
_OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


@dataclass(frozen=True)
class ImportLine:
    """One line of ``python -X importtime``: module, nesting depth, self and cumulative µs."""

    module: str
    depth: int
    self_us: int
    cumulative_us: int


def parse_importtime(stderr: str) -> list[ImportLine]:
    lines = []
    for raw in stderr.splitlines():
        if not raw.startswith("import time:"):
            continue
        fields = raw[len("import time:"):].split("|")
        if len(fields) != 3 or not fields[0].strip().isdigit():
            continue  # the header line
        name = fields[2].rstrip()
        depth = (len(name) - len(name.lstrip()) - 1) // 2
        lines.append(ImportLine(name.strip(), depth, int(fields[0]), int(fields[1])))
    return lines


def _environment(**updates: str) -> dict[str, str]:
    return {**os.environ, **_OFFLINE, **updates}


def _importtime(code: str, autoload: str = "0") -> list[ImportLine]:
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", code],
                          env=_environment(COMPRESSBENCH_LM_EVAL=autoload),
                          capture_output=True, text=True, timeout=300, check=True)
    return parse_importtime(done.stderr)


def autoload_imports() -> list[ImportLine]:
    """The modules that the autoload (:func:`register` and the rest of what the hook does once
    lm-eval's CLI package is imported) adds to what that package imports anyway."""
    from bench.lmeval.adapter import CLI_PACKAGE

    cli_import = f"import {CLI_PACKAGE}"
    plain = {line.module for line in _importtime(cli_import, autoload="0")}
    return [line for line in _importtime(cli_import, autoload="1")
            if line.module not in plain]


def hook_imports() -> list[ImportLine]:
    """The outermost ``bench`` imports that the ``.pth`` hook makes in a bare ``python``."""
    lines = [line for line in _importtime("pass") if line.module.split(".")[0] == "bench"]
    if not lines:
        return []
    outermost = min(line.depth for line in lines)
    return [line for line in lines if line.depth == outermost]


def lm_eval_program() -> Path:
    """The ``lm_eval`` script of this interpreter (a version-manager shim would add its own
    start-up time to every run)."""
    beside = Path(sys.executable).parent / "lm_eval"
    if beside.is_file():
        return beside
    found = shutil.which("lm_eval")
    if found is None:
        raise FileNotFoundError("no lm_eval program next to this Python or on PATH; install "
                                "lm-eval in this environment (pip install -e .)")
    return Path(found)


@dataclass(frozen=True)
class RunCost:
    """Wall time and the CPU time (user + system) of one child process."""

    wall: float
    cpu: float


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def lm_eval_run(program: Path, model_dir: Path, data_dir: Path, limit: int,
                with_plugin: bool) -> RunCost:
    from bench.lmeval.plugin import AUTOLOAD_ENV, task_include_path

    command = [str(program), "--model", "hf", "--model_args", f"pretrained={model_dir}",
               "--tasks", "compressed_squad", "--limit", str(limit), "--device", "cpu"]
    env = _environment(COMPRESSBENCH_DATA=str(data_dir))
    env.pop(AUTOLOAD_ENV, None)
    if not with_plugin:
        env[AUTOLOAD_ENV] = "0"
        command += ["--include_path", str(task_include_path())]
    cpu_before, start = _children_cpu(), time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1200)
    cost = RunCost(time.perf_counter() - start, _children_cpu() - cpu_before)
    if done.returncode != 0:
        raise RuntimeError(f"{shlex.join(command)} failed:\n{done.stderr[-3000:]}")
    return cost


def alternated_runs(program: Path, model_dir: Path, data_dir: Path, limit: int,
                    runs: int) -> dict[bool, list[RunCost]]:
    """``runs`` runs each, the order of the two variants swapped every round."""
    costs: dict[bool, list[RunCost]] = {True: [], False: []}
    for round_index in range(runs):
        order = (True, False) if round_index % 2 == 0 else (False, True)
        for with_plugin in order:
            costs[with_plugin].append(
                lm_eval_run(program, model_dir, data_dir, limit, with_plugin))
    return costs


@contextmanager
def _demo_inputs(model_dir: Path | None, data_dir: Path | None) -> Iterator[tuple[Path, Path]]:
    if model_dir is not None and data_dir is not None:
        yield model_dir, data_dir
        return
    if model_dir is not None or data_dir is not None:
        raise ValueError("--model-dir and --data-dir go together: pass both, or neither to "
                         "build the demo's tiny model and data")
    from bench.demo import prepare_demo

    with tempfile.TemporaryDirectory() as tmp:
        yield prepare_demo(Path(tmp))


def _self_ms(lines: list[ImportLine]) -> float:
    return sum(line.self_us for line in lines) / 1000


def _cumulative_ms(lines: list[ImportLine]) -> float:
    return sum(line.cumulative_us for line in lines) / 1000


def _report_imports(runs: int) -> None:
    autoload_runs = sorted((autoload_imports() for _ in range(runs)), key=_self_ms)
    autoload_run = autoload_runs[len(autoload_runs) // 2]
    biggest = sorted(autoload_run, key=lambda line: -line.self_us)[:4]
    hook_runs = sorted((hook_imports() for _ in range(runs)), key=_cumulative_ms)
    print(f"{'autoload imports beyond lm-eval CLI package (-X importtime, median)':72s} "
          f"{_self_ms(autoload_run):7.1f} ms  ({len(autoload_run)} modules, most: "
          f"{', '.join(f'{line.module} {line.self_us / 1000:.1f}' for line in biggest)})")
    print(f"{'.pth hook imports in every python process (median)':72s} "
          f"{_cumulative_ms(hook_runs[len(hook_runs) // 2]):7.1f} ms")


def _report_runs(costs: dict[bool, list[RunCost]], limit: int) -> None:
    label = f"lm_eval --model hf --tasks compressed_squad --limit {limit}"
    for measure, unit in (("wall", "wall s"), ("cpu", "CPU s")):
        values = {variant: [getattr(cost, measure) for cost in costs[variant]]
                  for variant in (True, False)}
        medians = {variant: statistics.median(v) for variant, v in values.items()}
        for variant, name in ((True, "with plug-in"), (False, "without")):
            print(f"{f'{label}, {name}':72s} {medians[variant]:7.2f} {unit}  "
                  f"(runs: {', '.join(f'{v:.1f}' for v in values[variant])})")
        spread = max(statistics.pstdev(v) for v in values.values())
        print(f"{f'difference of medians, with - without ({unit})':72s} "
              f"{medians[True] - medians[False]:7.2f} {unit}  target <= {TARGET_SECONDS}; "
              f"spread (std) {spread:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="runs per variant (default 5)")
    parser.add_argument("--limit", type=int, default=1, help="questions per run (default 1)")
    parser.add_argument("--model-dir", type=Path, default=None, help="a local HF model folder")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="prepared data (COMPRESSBENCH_DATA) holding squad/test.parquet")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    program = lm_eval_program()
    _report_imports(args.runs)
    with _demo_inputs(args.model_dir, args.data_dir) as (model_dir, data_dir):
        costs = alternated_runs(program, model_dir, data_dir, args.limit, args.runs)
    _report_runs(costs, args.limit)
    print(f"reproduce: python {shlex.join(sys.argv)}")


if __name__ == "__main__":
    main()
