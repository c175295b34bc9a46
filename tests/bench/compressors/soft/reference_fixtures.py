"""Access to the reference fixtures: what each method's published code computed.

The root is ``$COMPRESSBENCH_REFERENCE_DIR`` when set, else ``../shared/data/reference`` beside
the checkout. Every expectation a parity test compares (case ids, k, lengths, shapes,
tolerances) is read from a method folder, so the same tests hold for any fixture set made the
same way. Under a root named by the variable, anything missing (a method folder, a file, the
base model beside the root) fails the test with its path; only the default root may be absent,
and then the tests skip.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, NoReturn

import pytest

REPO_ROOT = Path(__file__).resolve().parents[4]
DEFAULT_ROOT = REPO_ROOT.parent / "shared" / "data" / "reference"
ENV_VAR = "COMPRESSBENCH_REFERENCE_DIR"


def reference_root() -> Path:
    """The fixture root: ``$COMPRESSBENCH_REFERENCE_DIR`` or ``../shared/data/reference``."""
    configured = os.environ.get(ENV_VAR)
    return Path(configured) if configured else DEFAULT_ROOT


def root_is_configured() -> bool:
    """Whether ``$COMPRESSBENCH_REFERENCE_DIR`` names the root (then it must be complete)."""
    return bool(os.environ.get(ENV_VAR))


def report_missing(what: str, path: Path) -> NoReturn:
    """Fail for a path missing under a configured root; skip when the default root lacks it
    (a checkout without ``../shared``)."""
    if root_is_configured():
        pytest.fail(f"{what} not found at {path} ({ENV_VAR} is set, so the fixture set must "
                    "hold it)", pytrace=False)
    pytest.skip(f"{what} not found at {path} (set {ENV_VAR} or place ../shared beside the "
                "checkout)")


def stories_dir() -> Path:
    """The tiny real Llama the fixtures were made with (``../shared/data/stories260K_hf``)."""
    return reference_root().parent / "stories260K_hf"


def require_stories_dir() -> Path:
    """:func:`stories_dir`, which must exist (see :func:`report_missing`)."""
    path = stories_dir()
    if not path.is_dir():
        report_missing("the base model of the reference fixtures", path)
    return path


@dataclass(frozen=True)
class ReferenceFixture:
    """One method's fixture folder."""

    path: Path

    @cached_property
    def spec(self) -> dict[str, Any]:
        """``fixture.json``: method, number of cases, tolerances."""
        loaded: dict[str, Any] = json.loads((self.path / "fixture.json").read_text("utf-8"))
        return loaded

    @cached_property
    def cases(self) -> list[dict[str, Any]]:
        """``cases.jsonl``, one dict per case, in file order."""
        lines = (self.path / "cases.jsonl").read_text("utf-8").splitlines()
        cases = [json.loads(line) for line in lines if line.strip()]
        assert len(cases) == self.spec["cases"], f"{self.path}: case count != fixture.json"
        return cases

    def case(self, case_id: str) -> dict[str, Any]:
        return next(case for case in self.cases if case["id"] == case_id)

    @cached_property
    def tensors(self) -> dict[str, Any]:
        """``compressed.safetensors`` as a dict of CPU tensors."""
        from safetensors.torch import load_file

        return load_file(str(self.path / "compressed.safetensors"))

    @cached_property
    def losses(self) -> dict[str, Any]:
        """``losses.json`` (only for methods whose reference trains)."""
        loaded: dict[str, Any] = json.loads((self.path / "losses.json").read_text("utf-8"))
        return loaded

    @property
    def has_losses(self) -> bool:
        return (self.path / "losses.json").is_file()

    @property
    def tensor_atol(self) -> float:
        return float(self.spec["tensors"]["atol"])

    @property
    def tensor_rtol(self) -> float:
        return float(self.spec["tensors"].get("rtol", 0.0))

    @property
    def loss_atol(self) -> float:
        return float(self.spec["losses"]["atol"])


def load_fixture(method: str) -> ReferenceFixture:
    """The fixture folder of ``method`` (see :func:`report_missing` when it is absent)."""
    path = reference_root() / method
    if not (path / "fixture.json").is_file():
        report_missing(f"reference fixtures for {method!r}", path)
    return ReferenceFixture(path)


def fixture_file(method: str, name: str) -> Path | None:
    """``name`` in the folder of ``method``: None when the default root is absent (nothing to
    parametrise), a failure when a configured root lacks it."""
    path = reference_root() / method / name
    if path.is_file():
        return path
    if root_is_configured():
        report_missing(f"reference fixture file {name!r} for {method!r}", path)
    return None


def read_cases(method: str) -> list[dict[str, Any]]:
    """``cases.jsonl`` of ``method`` for parametrisation (see :func:`fixture_file`)."""
    path = fixture_file(method, "cases.jsonl")
    if path is None:
        return []
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]


def case_ids(method: str, kind: str | None = None) -> list[str]:
    """Case ids for parametrisation (see :func:`read_cases`)."""
    return [case["id"] for case in read_cases(method) if kind is None or case["kind"] == kind]
