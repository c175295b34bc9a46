"""Generation settings shared by every decoding path."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class GenerationSettings:
    """Greedy decoding settings of one request (from lm-eval's ``gen_kwargs``)."""

    max_new_tokens: int = 46
    until: tuple[str, ...] = field(default_factory=tuple)

    def cut_at_stop(self, text: str) -> str:
        """``text`` up to the first stop string, as lm-eval's HF backend does."""
        for stop in self.until:
            if stop and stop in text:
                text = text.split(stop, 1)[0]
        return text
