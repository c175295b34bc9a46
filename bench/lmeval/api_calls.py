"""What each API call cost: latency and the token usage the server reported.

lm-eval's API models post a batch of prompts, parse the response and then hand each answer
to the cache hook with its prompt, in both the sequential and the concurrent path and with
no await in between. :class:`CallLedger` notes the cost at parsing and files it under each
answer's prompt at the hook. A call's clock starts when it is sent (sequential) or when it
holds a concurrency slot (concurrent), so waiting for a slot is not latency; a retried call's
latency is that of its successful attempt, and failed attempts are counted for the run.
"""

from __future__ import annotations

import asyncio
import email.utils
import math
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bench.lmeval.adapter import answers_noted
from bench.results_record import ServedUsage

MAX_RETRY_AFTER_SECONDS = 120.0
_CALL_STARTED: ContextVar[float | None] = ContextVar("compressbench_call_started", default=None)


def start_call_clock() -> None:
    """Mark the start of an API call (per thread and per asyncio task)."""
    _CALL_STARTED.set(time.perf_counter())


class ClockedSemaphore:
    """lm-eval's concurrency semaphore, starting the call clock once a slot is held."""

    def __init__(self, inner: asyncio.Semaphore) -> None:
        self._inner = inner

    async def acquire(self) -> bool:
        acquired = await self._inner.acquire()
        start_call_clock()
        return acquired

    def release(self) -> None:
        self._inner.release()


@dataclass(frozen=True)
class CallCost:
    """Latency of the call that produced an answer, and the answer's share of its usage."""

    seconds: float
    usage: ServedUsage | None


def cost_of_response(outputs: Any) -> CallCost:
    """The cost of a parsed response (one dict, or a list of them for batched calls).

    The server reports usage per call; a call that answered several prompts gives each answer
    an equal share, so that sums and means over answers stay exact.
    """
    started = _CALL_STARTED.get()
    seconds = time.perf_counter() - started if started is not None else 0.0
    responses = _responses(outputs)
    answers = answer_count(outputs)
    usages = [r.get("usage") for r in responses]
    if not responses or answers == 0 or not all(isinstance(u, dict) for u in usages):
        return CallCost(seconds, None)
    try:
        prompt = sum(float(u["prompt_tokens"]) for u in usages if u is not None)
        completion = sum(float(u.get("completion_tokens") or 0) for u in usages if u is not None)
    except (KeyError, TypeError, ValueError):
        return CallCost(seconds, None)
    return CallCost(seconds, ServedUsage(prompt / answers, completion / answers))


def _responses(outputs: Any) -> list[dict[str, Any]]:
    return [r for r in (outputs if isinstance(outputs, list) else [outputs])
            if isinstance(r, dict)]


def answer_count(outputs: Any) -> int:
    """Number of answers (choices) in a response."""
    return sum(len(r.get("choices") or []) for r in _responses(outputs))


def prompt_key(prompt: Any) -> str:
    """The text of a prompt as lm-eval hands it around (a string or a JSON chat string)."""
    return str(getattr(prompt, "prompt", prompt))


class CallLedger:
    """Per-prompt costs of one ``generate_until``, and totals over the run."""

    def __init__(self) -> None:
        self.calls = 0
        self.failed_attempts = 0
        self.waited_for_retry_after = 0.0
        self.prompt_tokens = 0.0
        self.completion_tokens = 0.0
        self._latest: CallCost | None = None
        self._by_prompt: dict[str, CallCost] = {}

    def note_response(self, outputs: Any) -> None:
        """Called where the response is parsed, before its answers reach the cache hook."""
        cost = cost_of_response(outputs)
        self.calls += 1
        self._latest = cost
        if cost.usage is not None:
            answers = answer_count(outputs)
            self.prompt_tokens += cost.usage.prompt_tokens * answers
            self.completion_tokens += cost.usage.completion_tokens * answers

    def note_failure(self, error: BaseException) -> float:
        """Count a failed attempt; the seconds a 429/503 asked to wait (0 when it did not)."""
        self.failed_attempts += 1
        wait = retry_after_seconds(error)
        self.waited_for_retry_after += wait
        return wait

    def cost_of(self, prompt: Any) -> CallCost | None:
        return self._by_prompt.get(prompt_key(prompt))

    @contextmanager
    def watching(self, owner: Any) -> Iterator[None]:
        """Meanwhile, file the latest call's cost under each prompt that ``owner`` (an lm-eval
        API model) answers."""
        with answers_noted(owner, self._file):
            self._by_prompt.clear()
            yield

    def _file(self, prompt: Any) -> None:
        if self._latest is not None:
            self._by_prompt[prompt_key(prompt)] = self._latest

    def totals(self) -> dict[str, float]:
        return {"calls": float(self.calls), "failed_attempts": float(self.failed_attempts),
                "retry_after_seconds": self.waited_for_retry_after,
                "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens}


def retry_after_seconds(error: BaseException) -> float:
    """``Retry-After`` of a 429/503 response behind ``error`` (requests or aiohttp), capped;
    0 when it is neither a number of seconds nor a date."""
    response = getattr(error, "response", None)
    status = getattr(response, "status_code", None) or getattr(error, "status", None)
    if status not in (429, 503):
        return 0.0
    headers: Mapping[str, str] = (getattr(response, "headers", None)
                                  or getattr(error, "headers", None) or {})
    value = headers.get("Retry-After")
    if not value:
        return 0.0
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return 0.0
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    if math.isnan(seconds):
        return 0.0
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)
