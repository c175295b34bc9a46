"""``check``: compare current results with a committed baseline file (regression gate)."""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.substrate.atomic import atomic_write_text
from leaderboard._errors import LeaderboardError
from leaderboard._export import dumps
from leaderboard._runs import Run, finite, merge_runs

BASELINE_SCHEMA = "compressbench-leaderboard-baseline"
BASELINE_VERSION = 1
_FIELDS: dict[str, type | tuple[type, ...]] = {
    "model": str,
    "compressor": str,
    "settings": dict,
    "compressor_version": str,
    "task": str,
    "task_version": str,
    "metric": str,
    "value": (int, float),
    "higher_is_better": bool,
}


@dataclass(frozen=True)
class Entry:
    """One checked number: a metric of a task for one row."""

    model: str
    compressor: str
    settings: tuple[tuple[str, str], ...]
    compressor_version: str
    task: str
    task_version: str
    metric: str
    value: float
    stderr: float | None
    higher_is_better: bool
    n: int | None

    @property
    def ident(self) -> tuple[Any, ...]:
        """What identifies the entry across files."""
        return (
            self.model,
            self.compressor,
            self.settings,
            self.compressor_version,
            self.task,
            self.metric,
        )

    @property
    def row_label(self) -> str:
        """``model / compressor (settings)``."""
        inner = ", ".join(f"{k}={v}" for k, v in self.settings)
        return f"{self.model} / {self.compressor}" + (f" ({inner})" if inner else "")

    def to_json(self) -> dict[str, Any]:
        """The entry as stored in the baseline file."""
        return {
            "model": self.model,
            "compressor": self.compressor,
            "settings": dict(self.settings),
            "compressor_version": self.compressor_version,
            "task": self.task,
            "task_version": self.task_version,
            "metric": self.metric,
            "value": self.value,
            "stderr": self.stderr,
            "higher_is_better": self.higher_is_better,
            "n": self.n,
        }


def current_entries(runs: Sequence[Run]) -> list[Entry]:
    """Every score metric (higher is better) of every task of every row."""
    entries = []
    for key, tasks in merge_runs(runs).items():
        for task, result in tasks.items():
            for metric, value in sorted(result.metrics.items()):
                if not result.higher_is_better.get(metric, True):
                    continue
                entries.append(
                    Entry(
                        key.model,
                        key.compressor,
                        key.settings,
                        key.version,
                        task,
                        result.version,
                        metric,
                        value,
                        result.stderrs.get(metric),
                        True,
                        result.n_samples,
                    )
                )
    return entries


def write_baseline(path: Path, entries: Sequence[Entry]) -> None:
    """Write a baseline file (versioned schema) atomically."""
    atomic_write_text(
        path,
        dumps(
            {
                "schema": BASELINE_SCHEMA,
                "schema_version": BASELINE_VERSION,
                "unit": "values as lm-eval reports them (0..1); tolerances in points (x100)",
                "entries": [entry.to_json() for entry in entries],
            }
        ),
    )


def _entry(raw: Any, where: str) -> Entry:
    if not isinstance(raw, dict):
        raise LeaderboardError(f"{where}: must be an object")
    for name, kind in _FIELDS.items():
        value = raw.get(name)
        if not isinstance(value, kind) or (name == "value" and isinstance(value, bool)):
            raise LeaderboardError(f"{where}: field {name!r} missing or not {kind}")
    stderr, n = raw.get("stderr"), raw.get("n")
    if stderr is not None and not isinstance(stderr, int | float):
        raise LeaderboardError(f"{where}: field 'stderr' must be a number or null")
    if n is not None and not isinstance(n, int):
        raise LeaderboardError(f"{where}: field 'n' must be an integer or null")
    if stderr is not None and finite(stderr, where, "stderr") < 0:
        raise LeaderboardError(f"{where}: field 'stderr': {stderr!r} is negative; a standard "
                               "error is not")
    if n is not None and n < 0:
        raise LeaderboardError(f"{where}: field 'n': {n!r} is negative; a count is not")
    settings = raw["settings"]
    return Entry(
        raw["model"],
        raw["compressor"],
        tuple(sorted((str(k), str(v)) for k, v in settings.items())),
        raw["compressor_version"],
        raw["task"],
        raw["task_version"],
        raw["metric"],
        finite(raw["value"], where, "value"),
        None if stderr is None else float(stderr),
        raw["higher_is_better"],
        n,
    )


def read_baseline(path: Path) -> list[Entry]:
    """Read and validate a baseline file, naming the field that is wrong."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LeaderboardError(f"{path}: unreadable baseline: {exc}") from exc
    if not isinstance(data, dict) or data.get("schema") != BASELINE_SCHEMA:
        raise LeaderboardError(f"{path}: field 'schema' must be {BASELINE_SCHEMA!r}")
    if data.get("schema_version") != BASELINE_VERSION:
        raise LeaderboardError(
            f"{path}: schema_version {data.get('schema_version')!r} is not supported "
            f"(this version reads {BASELINE_VERSION})"
        )
    if not isinstance(data.get("entries"), list):
        raise LeaderboardError(f"{path}: field 'entries' must be a list")
    if not data["entries"]:
        raise LeaderboardError(f"{path}: field 'entries': empty, so nothing would be checked; "
                               "write the baseline with --update")
    return [_entry(raw, f"{path}: entries[{i}]") for i, raw in enumerate(data["entries"])]


@dataclass(frozen=True)
class Finding:
    """The comparison of one baseline entry with the current result."""

    baseline: Entry
    current: Entry | None
    drop: float | None
    allowed: float
    regression: bool

    @property
    def status(self) -> str:
        """``ok``, ``regression`` or ``missing``."""
        if self.current is None:
            return "missing"
        return "regression" if self.regression else "ok"


def check_allowance(tolerance: float, stderr_z: float | None) -> None:
    """Refuse a tolerance or z that would let every drop pass (NaN, infinite or negative)."""
    if not (math.isfinite(tolerance) and tolerance >= 0):
        raise LeaderboardError(f"--tolerance {tolerance:g}: must be a finite number of points "
                               ">= 0")
    if stderr_z is not None and not (math.isfinite(stderr_z) and stderr_z > 0):
        raise LeaderboardError(f"--z {stderr_z:g}: must be a finite number > 0")


def compare(
    baseline: Sequence[Entry],
    current: Sequence[Entry],
    tolerance: float,
    stderr_z: float | None = None,
) -> list[Finding]:
    """Compare entries; a drop (points, x100) beyond the allowance is a regression.

    With ``stderr_z`` a drop must also exceed ``z * sqrt(se_baseline^2 + se_current^2)``.
    """
    check_allowance(tolerance, stderr_z)
    by_ident = {entry.ident: entry for entry in current}
    findings = []
    for base in baseline:
        now = by_ident.get(base.ident)
        if now is None:
            findings.append(Finding(base, None, None, tolerance, True))
            continue
        if now.task_version != base.task_version:
            raise LeaderboardError(
                f"{base.task} is version {now.task_version} now but {base.task_version} in the "
                "baseline: update the baseline (--update) instead of comparing"
            )
        sign = 1.0 if base.higher_is_better else -1.0
        drop = sign * (base.value - now.value) * 100.0
        allowed = tolerance
        regression = drop > tolerance + 1e-9
        if stderr_z is not None and base.stderr is not None and now.stderr is not None:
            noise = stderr_z * math.hypot(base.stderr, now.stderr) * 100.0
            allowed = max(tolerance, noise)
            regression = regression and drop > noise + 1e-9
        findings.append(Finding(base, now, drop, allowed, regression))
    return findings


def report(findings: Sequence[Finding], new: Sequence[Entry]) -> str:
    """A readable table of regressions and missing results, and a summary line."""
    bad = [f for f in findings if f.status != "ok"]
    lines = []
    if bad:
        header = ("row", "task", "metric", "baseline", "current", "drop", "allowed", "status")
        body = [
            (
                f.baseline.row_label,
                f.baseline.task,
                f.baseline.metric,
                f"{f.baseline.value * 100:.2f}",
                "-" if f.current is None else f"{f.current.value * 100:.2f}",
                "-" if f.drop is None else f"{f.drop:.2f}",
                f"{f.allowed:.2f}",
                f.status,
            )
            for f in bad
        ]
        widths = [max(len(r[i]) for r in (header, *body)) for i in range(len(header))]
        for row in (header, tuple("-" * w for w in widths), *body):
            lines.append(
                "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
            )
    lines.append(
        f"{len(findings)} baseline metric(s) checked: {len(findings) - len(bad)} ok, "
        f"{sum(f.status == 'regression' for f in bad)} regression(s), "
        f"{sum(f.status == 'missing' for f in bad)} missing; {len(new)} new (not in the baseline)."
    )
    return "\n".join(lines)


def junit_xml(findings: Sequence[Finding]) -> str:
    """The findings as a JUnit XML test suite (one test case per baseline metric)."""
    failures = sum(f.status != "ok" for f in findings)
    suite = ET.Element(
        "testsuite",
        name="compressbench-leaderboard-check",
        tests=str(len(findings)),
        failures=str(failures),
        errors="0",
    )
    for finding in findings:
        base = finding.baseline
        case = ET.SubElement(
            suite, "testcase", classname=base.row_label, name=f"{base.task}/{base.metric}"
        )
        if finding.status != "ok":
            current = "missing" if finding.current is None else f"{finding.current.value * 100:.2f}"
            message = (
                f"{finding.status}: baseline {base.value * 100:.2f}, current {current}, "
                f"allowed drop {finding.allowed:.2f} points"
            )
            ET.SubElement(case, "failure", message=message, type=finding.status).text = message
    return ET.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"


def new_entries(baseline: Sequence[Entry], current: Sequence[Entry]) -> list[Entry]:
    """Current entries that the baseline does not know."""
    known = {entry.ident for entry in baseline}
    return [entry for entry in current if entry.ident not in known]
