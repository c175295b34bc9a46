"""One training example, as the data loaders read it and every method's collate takes it."""

from __future__ import annotations

from dataclasses import dataclass

from bench.substrate.errors import InputError

KINDS = ("regeneration", "qa")


@dataclass(frozen=True)
class Example:
    """One training example: regeneration (``target`` is the context) or QA."""

    context: str
    kind: str
    target: str
    question: str | None = None
    answers: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"example kind must be one of {KINDS}, got {self.kind!r}")
        if self.kind == "qa" and not self.question:
            raise InputError("a QA example needs a question")
