"""CI installs the exact versions of ``constraints.txt``; they must satisfy pyproject's ranges."""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent


def pinned_versions(text: str) -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        requirement = Requirement(line)
        (specifier,) = requirement.specifier
        assert specifier.operator == "==", f"not an exact pin: {line}"
        pins[canonicalize_name(requirement.name)] = Version(specifier.version)
    return pins


def declared_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    lines = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        lines.extend(extra)
    return [Requirement(line) for line in lines]


def unmet_requirements(requirements: list[Requirement], pins: dict[str, Version]) -> list[str]:
    unmet = []
    for requirement in requirements:
        pinned = pins.get(canonicalize_name(requirement.name))
        if pinned is None:
            unmet.append(f"{requirement.name}: not pinned")
        elif not requirement.specifier.contains(pinned, prereleases=True):
            unmet.append(f"{requirement.name}: pinned {pinned} outside {requirement.specifier}")
    return unmet


def test_every_declared_dependency_is_pinned_within_its_range() -> None:
    pins = pinned_versions((ROOT / "constraints.txt").read_text(encoding="utf-8"))
    assert unmet_requirements(declared_requirements(), pins) == []


def test_a_pin_outside_a_range_or_a_missing_pin_is_found() -> None:
    requirements = [Requirement("torch>=2.2"), Requirement("lm-eval[api]==0.4.13")]
    pins = pinned_versions("torch==2.1.0\n")
    assert unmet_requirements(requirements, pins) == [
        "torch: pinned 2.1.0 outside >=2.2", "lm-eval: not pinned"]


def test_ci_installs_from_the_constraints() -> None:
    script = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    installs = [line for line in script.splitlines()
                if "pip install" in line and "torch==" not in line]
    assert installs and all("-c constraints.txt" in line for line in installs), installs
