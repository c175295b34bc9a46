"""Concurrent chat-completion requests with timeouts, backoff and Retry-After handling."""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from tqdm import tqdm

from data_builders._secrets import mask_secrets
from data_builders.arxivqa.cache import ResponseCache


@dataclass(frozen=True)
class Job:
    """One request: the context it is for, the prompt and its cache key."""

    context_id: str
    prompt: str
    key: str


@dataclass(frozen=True)
class ClientSettings:
    """Endpoint, model, sampling and the retry policy."""

    base_url: str
    api_key: str = field(repr=False)
    model: str
    concurrency: int = 4
    timeout: float = 120.0
    max_retries: int = 6
    backoff: float = 2.0
    max_wait: float = 300.0
    temperature: float = 0.0
    max_tokens: int = 2048


@dataclass
class Usage:
    """What one run did (printed at the end and stored in the manifest)."""

    requests_sent: int = 0
    answered: int = 0
    cached: int = 0
    failed: int = 0
    retries: int = 0
    rate_limited: int = 0
    timeouts: int = 0
    server_errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready copy (errors trimmed to the first ten)."""
        data = asdict(self)
        data["errors"] = self.errors[:10]
        return data


class RequestFailedError(RuntimeError):
    """A request still failed after all retries (or failed in a way retrying cannot fix).

    The message passes through :func:`mask_secrets`: servers echo keys in error bodies.
    """

    def __init__(self, message: str) -> None:
        super().__init__(mask_secrets(message))


def retry_after_seconds(headers: Any) -> float | None:
    """Seconds asked by ``retry-after-ms`` / ``Retry-After`` (seconds or an HTTP date)."""
    if headers is None:
        return None
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return float(millis) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value)
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


async def _complete(client: Any, job: Job, settings: ClientSettings, usage: Usage) -> Any:
    import openai

    for attempt in range(settings.max_retries + 1):
        usage.requests_sent += 1
        asked: float | None = None
        try:
            return await client.chat.completions.create(
                model=settings.model,
                messages=[{"role": "user", "content": job.prompt}],
                temperature=settings.temperature,
                max_tokens=settings.max_tokens,
            )
        except openai.RateLimitError as error:
            usage.rate_limited += 1
            asked = retry_after_seconds(error.response.headers)
            reason = "429 rate limited"
        except openai.APITimeoutError:
            usage.timeouts += 1
            reason = f"timeout after {settings.timeout}s"
        except openai.APIConnectionError as error:
            reason = f"connection error ({error})"
        except openai.APIStatusError as error:
            if error.status_code < 500 and error.status_code not in (408, 409):
                raise RequestFailedError(f"HTTP {error.status_code}: {error.message}") from error
            usage.server_errors += 1
            asked = retry_after_seconds(error.response.headers)
            reason = f"HTTP {error.status_code}"
        except openai.APIError as error:  # an answer that is not a chat completion
            reason = f"unusable response ({error})"
        if attempt == settings.max_retries:
            raise RequestFailedError(f"{reason} ({attempt + 1} attempts)")
        usage.retries += 1
        wait = asked if asked is not None else settings.backoff * 2**attempt
        await asyncio.sleep(min(wait, settings.max_wait))
    raise AssertionError("unreachable")


def _entry(job: Job, settings: ClientSettings, response: Any) -> dict[str, Any]:
    if not getattr(response, "choices", None):
        shown = mask_secrets(str(response))[:200]  # masked before it is cut
        raise RequestFailedError(f"a response without choices ({shown})")
    choice = response.choices[0]
    usage = response.usage
    return {
        "model": settings.model,
        "key": job.key,
        "context_id": job.context_id,
        "prompt": job.prompt,
        "content": mask_secrets(choice.message.content or ""),
        "finish_reason": choice.finish_reason,
        "response_model": mask_secrets(response.model or ""),
        "temperature": settings.temperature,
        "max_tokens": settings.max_tokens,
        "usage": {
            "prompt_tokens": usage.prompt_tokens if usage else 0,
            "completion_tokens": usage.completion_tokens if usage else 0,
        },
    }


async def run_jobs(
    jobs: Sequence[Job], settings: ClientSettings, cache: ResponseCache, usage: Usage
) -> None:
    """Send every job without a cached answer, ``concurrency`` at a time; cache each answer."""
    import openai

    pending = [job for job in jobs if not cache.has(job.key)]
    usage.cached += len(jobs) - len(pending)
    if not pending:
        return
    client = openai.AsyncOpenAI(
        base_url=settings.base_url,
        api_key=settings.api_key,
        timeout=settings.timeout,
        max_retries=0,
    )
    limit = asyncio.Semaphore(settings.concurrency)

    async def one(job: Job) -> None:
        async with limit:
            response = await _complete(client, job, settings, usage)
        cache.put(job.key, _entry(job, settings, response))
        usage.answered += 1
        if response.usage:
            usage.prompt_tokens += response.usage.prompt_tokens
            usage.completion_tokens += response.usage.completion_tokens

    tasks = [asyncio.create_task(one(job)) for job in pending]
    try:
        for finished in tqdm(
            asyncio.as_completed(tasks),
            total=len(tasks),
            desc="requests",
            unit=" req",
            disable=None,
        ):
            try:
                await finished
            except RequestFailedError as error:
                usage.failed += 1
                usage.errors.append(str(error))
    finally:
        await client.close()
