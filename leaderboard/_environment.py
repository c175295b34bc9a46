"""Where and with what a run was made, as its results file records it, and the page's footer.

lm-eval writes the versions (``lm_eval_version``, ``transformers_version``), the device
(``config.device``), the model's size and dtype (``config.model_num_parameters``,
``config.model_dtype``) and PyTorch's environment report (``pretty_env_info``: processor and
GPUs); compressbench adds its harness and record versions (``config.compressbench``).
"""

from __future__ import annotations

import importlib.metadata
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from bench.results_record import RECORD_KEY

UNKNOWN = "not recorded"
_NOT_COLLECTED = ("", "could not collect", "n/a", "none")
_GPU_RE = re.compile(r"^GPU \d+: (?P<name>.+)$")


@dataclass(frozen=True)
class RunEnvironment:
    """The versions and hardware one results file records ("" where it records none)."""

    date: str = ""
    lm_eval: str = ""
    transformers: str = ""
    harness: str = ""
    record: str = ""
    device: str = ""
    processor: str = ""
    gpus: str = ""
    parameters: int | None = None
    dtype: str = ""


def _text(value: Any) -> str:
    return str(value).strip() if isinstance(value, str | int | float) else ""


def _collected(value: str) -> str:
    return "" if value.strip().lower() in _NOT_COLLECTED else value.strip()


def _report_field(report: str, name: str) -> str:
    """The value after ``name:`` on its line of PyTorch's environment report."""
    match = re.search(rf"^{re.escape(name)}:[ \t]*(.*)$", report, re.M)
    return _collected(match.group(1)) if match else ""


def _gpus(report: str) -> str:
    """The GPUs of the report, counted by model: ``2 x NVIDIA H100 80GB HBM3``."""
    lines = report.splitlines()
    start = next((i for i, line in enumerate(lines)
                  if line.startswith("GPU models and configuration:")), None)
    if start is None:
        return ""
    first = lines[start].partition(":")[2].strip()
    names = [m.group("name").strip() for line in [first, *lines[start + 1:]]
             if (m := _GPU_RE.match(line.strip()))]
    if not names:
        return _collected(first)
    counts = {name: names.count(name) for name in dict.fromkeys(names)}
    return ", ".join(name if n == 1 else f"{n} x {name}" for name, n in counts.items())


def _processor(report: str) -> str:
    name = _report_field(report, "Model name")
    count = _report_field(report, "CPU(s)")
    return f"{name} ({count} CPUs)" if name and count else name


def run_environment(data: Mapping[str, Any], date: str) -> RunEnvironment:
    """What the results file ``data`` (written on ``date``) records about its environment."""
    config = data.get("config")
    config = config if isinstance(config, Mapping) else {}
    record = config.get(RECORD_KEY)
    record = record if isinstance(record, Mapping) else {}
    report = _text(data.get("pretty_env_info"))
    parameters = config.get("model_num_parameters")
    return RunEnvironment(
        date=date[:10] if re.match(r"^\d{4}-\d{2}-\d{2}", date) else "",
        lm_eval=_text(data.get("lm_eval_version")),
        transformers=_text(data.get("transformers_version")),
        harness=_text(record.get("harness_version")),
        record=_text(record.get("schema_version")),
        device=_text(config.get("device")),
        processor=_processor(report),
        gpus=_gpus(report),
        parameters=parameters if isinstance(parameters, int) and parameters > 0 else None,
        dtype=_text(config.get("model_dtype")).removeprefix("torch."),
    )


@dataclass(frozen=True)
class Footer:
    """What the page's footer says: when the runs were made, with which versions, on which
    models and hardware."""

    dates: str
    builder: str
    lm_eval: str
    transformers: str
    harness: str
    models: list[str]
    hardware: list[str]


def _listed(values: Iterable[str]) -> str:
    found = sorted({value for value in values if value})
    return ", ".join(found) if found else UNKNOWN


def _hardware(env: RunEnvironment) -> str:
    parts = [part for part in (env.gpus, env.processor) if part]
    where = env.device or "device not recorded"
    return f"{where}: {'; '.join(parts)}" if parts else where


def _model(label: str, env: RunEnvironment) -> str:
    size = f"{env.parameters:,} parameters" if env.parameters else ""
    details = ", ".join(part for part in (size, env.dtype) if part)
    return f"{label} ({details})" if details else label


def builder_version() -> str:
    """The installed compressbench that builds the page."""
    try:
        return importlib.metadata.version("compressbench")
    except importlib.metadata.PackageNotFoundError:
        return UNKNOWN


def footer(runs: Iterable[tuple[str, RunEnvironment]]) -> Footer:
    """The footer of runs given as (target model label, environment)."""
    listed = list(runs)
    dates = sorted({env.date for _label, env in listed if env.date})
    harness = _listed(f"harness {env.harness}, results record {env.record or '1.0'}"
                      for _label, env in listed if env.harness)
    return Footer(
        dates=(UNKNOWN if not dates else dates[0] if len(dates) == 1
               else f"{dates[0]} to {dates[-1]}"),
        builder=builder_version(),
        lm_eval=_listed(env.lm_eval for _label, env in listed),
        transformers=_listed(env.transformers for _label, env in listed),
        harness=harness,
        models=sorted({_model(label, env) for label, env in listed}),
        hardware=sorted({_hardware(env) for _label, env in listed}),
    )
