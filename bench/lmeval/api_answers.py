"""What a served answer must be before it is scored or counted, and how it is read.

Every answer of the OpenAI-compatible models is read through :class:`GuardedSession`: within
the call's deadline (``timeout=``, for the whole request: connecting, headers and body; a
server that trickles bytes is cut off there), at most :func:`size_cap` bytes (derived from
the request's ``max_tokens``), and checked against its request by :func:`answer_problem`:
one choice per prompt with distinct indices, a text for each, usage counts that are whole,
finite, not negative and within what the request could produce. An answer that fails raises
:class:`UnusableAnswerError` naming the request, which lm-eval retries like a failed call;
when the attempts are spent the run ends with that line.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeGuard

if TYPE_CHECKING:
    import aiohttp

logger = logging.getLogger(__name__)

BYTES_PER_TOKEN = 1024  # a token's text, JSON-escaped, with room to spare
BYTES_PER_CHOICE = 64 * 1024  # the JSON around a choice: ids, finish reason, logprobs ...
PROMPT_TOKENS_ALLOWANCE = 4096  # tokens a server may add to a prompt (chat template, BOS)
DEFAULT_MAX_TOKENS = 256  # lm-eval's default max_gen_toks
_USAGE_COUNTS = ("prompt_tokens", "completion_tokens", "total_tokens")


class UnusableAnswerError(ConnectionError):
    """A served answer that cannot be scored or counted, or none within the deadline."""


def prompts_of(payload: dict[str, Any]) -> list[Any]:
    """The prompts a request carries: one chat, a batch of strings or token lists, or
    prompt embeddings (base64 text, one per prompt)."""
    if "messages" in payload:
        return [payload["messages"]]
    embeds = payload.get("prompt_embeds")
    if embeds is not None:
        return [embeds] if isinstance(embeds, str) else list(embeds)
    prompt = payload.get("prompt")
    if isinstance(prompt, list) and prompt and not isinstance(prompt[0], int):
        return list(prompt)
    return [prompt]


def max_tokens_of(payload: dict[str, Any]) -> int:
    value = payload.get("max_tokens", payload.get("max_completion_tokens"))
    return value if isinstance(value, int) and value > 0 else DEFAULT_MAX_TOKENS


def choices_expected(payload: dict[str, Any]) -> int:
    per_prompt = payload.get("n", 1)
    per_prompt = per_prompt if isinstance(per_prompt, int) and per_prompt > 0 else 1
    return len(prompts_of(payload)) * per_prompt


def size_cap(payload: dict[str, Any]) -> int:
    """The most bytes an answer to ``payload`` may take."""
    return choices_expected(payload) * (BYTES_PER_CHOICE
                                        + max_tokens_of(payload) * BYTES_PER_TOKEN)


def usage_bounds(payload: dict[str, Any]) -> dict[str, int]:
    """The largest count of each usage field an answer to ``payload`` can report."""
    prompt = sum(_prompt_size(p) + PROMPT_TOKENS_ALLOWANCE for p in prompts_of(payload))
    completion = choices_expected(payload) * max_tokens_of(payload)
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion}


def _prompt_size(prompt: Any) -> int:
    """Tokens in a token list; else its UTF-8 bytes (no tokenizer makes more tokens)."""
    if isinstance(prompt, list) and all(isinstance(token, int) for token in prompt):
        return len(prompt)
    text = prompt if isinstance(prompt, str) else json.dumps(prompt, ensure_ascii=False)
    return len(text.encode("utf-8"))


def answer_problem(answer: Any, payload: dict[str, Any]) -> str | None:
    """What makes ``answer`` unusable for ``payload``; None when it can be scored."""
    if not isinstance(answer, dict):
        return "the answer is not a JSON object"
    return _choices_problem(answer.get("choices"), payload) or \
        _usage_problem(answer.get("usage"), payload)


def _choices_problem(choices: Any, payload: dict[str, Any]) -> str | None:
    expected = choices_expected(payload)
    if not isinstance(choices, list):
        return "the answer has no list 'choices'"
    if len(choices) != expected:
        return f"'choices' holds {len(choices)} answers for {expected} prompts"
    indices = [c.get("index") if isinstance(c, dict) else None for c in choices]
    if sorted(i for i in indices if _is_index(i)) != list(range(expected)):
        return f"'choices' has the indices {indices}, not 0 to {expected - 1} once each"
    for choice in choices:
        text = _choice_text(choice, chat="messages" in payload)
        if not isinstance(text, str):
            name = "message.content" if "messages" in payload else "text"
            shown = "null" if text is None else type(text).__name__
            return f"choice {choice['index']} has no {name} ({shown})"
    return None


def _choice_text(choice: dict[str, Any], chat: bool) -> Any:
    if not chat:
        return choice.get("text")
    message = choice.get("message")
    return message.get("content") if isinstance(message, dict) else None


def _usage_problem(usage: Any, payload: dict[str, Any]) -> str | None:
    if usage is None:
        return None
    if not isinstance(usage, dict):
        return "'usage' is not an object"
    for name, bound in usage_bounds(payload).items():
        value = usage.get(name)
        if value is None:
            continue
        if not _is_count(value) or value > bound:
            return (f"'usage.{name}' is {value!r}, not a count of tokens from 0 to {bound} "
                    "(what the request could produce)")
    return None


def _is_index(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_count(value: Any) -> bool:
    """A whole, finite, non-negative number (JSON may hold NaN, Infinity or 1.5)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return math.isfinite(value) and value >= 0 and float(value).is_integer()


class GuardedSession:
    """An aiohttp session whose answers are read within the deadline, capped and checked.

    ``where`` names the request (called only when an answer is refused).
    """

    def __init__(self, session: aiohttp.ClientSession, where: Callable[[], str]) -> None:
        self._session = session
        self._where = where

    def post(self, url: str, *, json: dict[str, Any], **kwargs: Any) -> _GuardedPost:
        return _GuardedPost(self._session, url, json, kwargs, self._where)


class _GuardedPost:
    """``async with`` one POST: the response comes as a :class:`GuardedResponse`."""

    def __init__(self, session: aiohttp.ClientSession, url: str, payload: dict[str, Any],
                 options: dict[str, Any], where: Callable[[], str]) -> None:
        self._request = session.post(url, json=payload, **options)
        self._payload = payload
        self._where = where
        self._deadline = session.timeout.total

    async def __aenter__(self) -> GuardedResponse:
        try:
            response = await self._request.__aenter__()
        except TimeoutError as error:
            raise _late(self._where, self._deadline) from error
        return GuardedResponse(response, self._payload, self._where, self._deadline)

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        traceback: TracebackType | None) -> None:
        await self._request.__aexit__(kind, error, traceback)


def _late(where: Callable[[], str], deadline: float | None) -> UnusableAnswerError:
    within = "the deadline" if deadline is None else f"{deadline:g} s"
    return UnusableAnswerError(f"{where()}: no complete answer within {within} "
                               "(timeout= in --model_args)")


class GuardedResponse:
    """The parts of an aiohttp response lm-eval reads; the body read capped and checked."""

    def __init__(self, response: aiohttp.ClientResponse, payload: dict[str, Any],
                 where: Callable[[], str], deadline: float | None) -> None:
        self._response = response
        self._payload = payload
        self._where = where
        self._deadline = deadline

    @property
    def ok(self) -> bool:
        return bool(self._response.ok)

    @property
    def status(self) -> int:
        return int(self._response.status)

    @property
    def headers(self) -> Any:
        return self._response.headers

    def raise_for_status(self) -> None:
        self._response.raise_for_status()

    async def text(self) -> str:
        return (await self._body()).decode("utf-8", errors="replace")

    async def json(self) -> dict[str, Any]:
        """The answer, once it is known to be usable for its request."""
        try:
            answer = json.loads(await self._body())
        except ValueError:
            raise self._refused("the answer is not JSON") from None
        problem = answer_problem(answer, self._payload)
        if problem is not None:
            raise self._refused(problem)
        return dict(answer)

    async def _body(self) -> bytes:
        cap = size_cap(self._payload)
        chunks: list[bytes] = []
        size = 0
        try:
            while size <= cap:
                chunk = await self._response.content.read(cap + 1 - size)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
        except TimeoutError as error:
            raise _late(self._where, self._deadline) from error
        if size > cap:
            raise self._refused(f"the answer is larger than {cap} bytes, the most that "
                                f"max_tokens={max_tokens_of(self._payload)} allows")
        return b"".join(chunks)

    def _refused(self, problem: str) -> UnusableAnswerError:
        return UnusableAnswerError(f"{self._where()}: {problem}; the answer was not used")


async def post_for_answer(session: GuardedSession, url: str, payload: dict[str, Any],
                          headers: dict[str, str]) -> dict[str, Any]:
    """POST ``payload``; the checked answer (an HTTP error status raises)."""
    async with session.post(url, json=payload, headers=headers) as response:
        if not response.ok:
            logger.warning("API request failed with status %d: %s. Retrying...",
                           response.status, await response.text())
        response.raise_for_status()
        return await response.json()
