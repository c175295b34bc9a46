"""Soft compressions answered by a served model from prompt embeddings.

vLLM's OpenAI-compatible server (0.11 or later, started with ``--enable-prompt-embeds``)
reads ``prompt_embeds`` in a Completions request: per prompt, the base64 text of a
``torch.save``d tensor ``(length, hidden)`` taken as the model's input vectors as they are
(no chat template, no special token added). A compressor that declares ``prompt_embeds``
gives those vectors itself (:class:`~bench.compressors.PromptEmbeddingsDecoder`): the same
ones its in-process decoder starts from. :class:`EmbedsClient` sends them, ``batch_size``
prompts per request and ``num_concurrent`` requests at a time, greedily (temperature 0, the
method's stop ids as ``stop_token_ids``, the task's ``until`` as ``stop``), and reads every
answer through :class:`~bench.lmeval.api_answers.GuardedSession`. A request the server
refuses (HTTP 400 or 422: embeddings of another hidden size, a server without
``--enable-prompt-embeds``) ends the run in one line; other failures are retried.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp

from bench.generation import GenerationSettings
from bench.lmeval.api_answers import GuardedSession, UnusableAnswerError
from bench.lmeval.api_calls import CallCost, CallLedger, cost_of_response, start_call_clock
from bench.substrate.errors import InputError

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

REFUSED_STATUSES = (400, 422)
SERVED_DTYPES = ("float32", "bfloat16", "float16")  # what vLLM loads as prompt embeddings
MESSAGE_CHARACTERS = 300
RETRY_SECONDS = 1.0
_RETRIED = (UnusableAnswerError, aiohttp.ClientError, TimeoutError)


class PromptEmbedsRefused(InputError):
    """The server refused a request's prompt embeddings; retrying cannot help."""


def encode_prompt_embeds(embeddings: torch.Tensor) -> str:
    """The base64 text of ``torch.save`` of ``embeddings`` (a CPU copy with its own storage,
    in its dtype: the values cross the wire exactly)."""
    import torch

    if embeddings.dim() != 2:
        raise ValueError(f"prompt embeddings must be (length, hidden), got shape "
                         f"{tuple(embeddings.shape)}")
    dtype = str(embeddings.dtype).removeprefix("torch.")
    if dtype not in SERVED_DTYPES:
        raise InputError(f"prompt embeddings of dtype {dtype} cannot be served (vLLM takes "
                         f"{', '.join(SERVED_DTYPES)})", field="dtype",
                         hint="load the model with dtype=bfloat16, float16 or float32")
    buffer = io.BytesIO()
    torch.save(embeddings.detach().to("cpu").contiguous().clone(), buffer)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


@dataclass(frozen=True)
class EmbedsPrompt:
    """One prompt to send: its encoded embeddings with their shape and dtype, its greedy
    settings, and the document it answers (for messages)."""

    embeds: str
    shape: tuple[int, int]
    dtype: str
    settings: GenerationSettings
    name: str


@dataclass(frozen=True)
class ServedAnswer:
    """A served answer (cut at the task's stop strings) and what its call cost."""

    text: str
    cost: CallCost


@dataclass(frozen=True)
class Endpoint:
    """Where the prompts go and how: lm-eval's API model settings."""

    url: str
    public_url: str
    model: str
    headers: dict[str, str]
    timeout: float
    concurrent: int
    batch_size: int
    attempts: int
    seed: int
    verify_certificate: bool = True


def embeds_payload(model: str, prompts: Sequence[EmbedsPrompt], stop_ids: Sequence[int],
                   seed: int) -> dict[str, Any]:
    """The Completions body answering ``prompts`` (which share their settings) greedily."""
    settings = prompts[0].settings
    return {"model": model, "prompt_embeds": [p.embeds for p in prompts],
            "max_tokens": settings.max_new_tokens, "temperature": 0,
            "stop": list(settings.until), "stop_token_ids": list(stop_ids), "seed": seed}


def error_message(body: str) -> str:
    """The message of an error body (OpenAI/vLLM ``{"error": {"message"}}``, older vLLM
    ``{"message"}``, FastAPI's ``{"detail"}``), else the body, on one line and shortened."""
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    message: Any = body
    if isinstance(parsed, dict):
        error = parsed.get("error")
        if isinstance(error, dict) and "message" in error:
            message = error["message"]
        elif isinstance(error, str):
            message = error
        else:
            message = parsed.get("message", parsed.get("detail", body))
    text = " ".join(str(message).split())
    return text if len(text) <= MESSAGE_CHARACTERS else text[:MESSAGE_CHARACTERS] + "..."


def refusal(where: str, status: int, body: str, prompts: Sequence[EmbedsPrompt]
            ) -> PromptEmbedsRefused:
    """The one line for a refused request: what was sent and what the server said."""
    first = prompts[0]
    message = error_message(body)
    if "enable-prompt-embeds" in message or "enable_prompt_embeds" in message:
        hint = "start the server with --enable-prompt-embeds (vLLM 0.11 or later)"
    else:
        hint = (f"pretrained= must be the served model (hidden size {first.shape[1]}), "
                "served by vLLM 0.11 or later with --enable-prompt-embeds")
    return PromptEmbedsRefused(
        f"{where}: the server refused the prompt embeddings ({len(prompts)} tensor(s) of "
        f"shape (length, {first.shape[1]}), {first.dtype}) with HTTP {status}: {message}",
        hint=hint)


class EmbedsClient:
    """Answers prompt embeddings through a Completions endpoint (see the module docstring)."""

    def __init__(self, endpoint: Endpoint, ledger: CallLedger) -> None:
        self.endpoint = endpoint
        self.ledger = ledger
        self.sent_bytes = 0
        self.sent_prompts = 0

    def answer(self, count: int, prompt: Callable[[int], EmbedsPrompt],
               settings: Sequence[GenerationSettings], stop_ids: Sequence[int]
               ) -> list[ServedAnswer]:
        """Answers of prompts ``0..count-1``; ``prompt(i)`` builds prompt ``i`` when its
        request is about to be sent (so that only requests in flight hold embeddings)."""
        calls = self.calls(settings)
        answers = asyncio.run(self._answer_calls(calls, prompt, stop_ids))
        ordered: dict[int, ServedAnswer] = {}
        for members, texts in zip(calls, answers, strict=True):
            ordered.update(zip(members, texts, strict=True))
        return [ordered[index] for index in range(count)]

    def calls(self, settings: Sequence[GenerationSettings]) -> list[list[int]]:
        """Prompt indices per request: prompts with equal settings, ``batch_size`` at most."""
        groups: dict[GenerationSettings, list[int]] = {}
        for index, setting in enumerate(settings):
            groups.setdefault(setting, []).append(index)
        size = max(1, self.endpoint.batch_size)
        return [members[start:start + size] for members in groups.values()
                for start in range(0, len(members), size)]

    async def _answer_calls(self, calls: Sequence[list[int]],
                            prompt: Callable[[int], EmbedsPrompt], stop_ids: Sequence[int]
                            ) -> list[list[ServedAnswer]]:
        endpoint = self.endpoint
        connector = aiohttp.TCPConnector(limit=endpoint.concurrent,
                                         ssl=endpoint.verify_certificate)
        timeout = aiohttp.ClientTimeout(total=endpoint.timeout)
        slots = asyncio.Semaphore(endpoint.concurrent)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            try:
                async with asyncio.TaskGroup() as group:  # a failure cancels the others
                    tasks = [group.create_task(self._answer_call(session, slots, members,
                                                                 prompt, stop_ids))
                             for members in calls]
            except BaseExceptionGroup as failed:
                raise failed.exceptions[0] from None
            return [task.result() for task in tasks]

    async def _answer_call(self, session: aiohttp.ClientSession, slots: asyncio.Semaphore,
                           members: Sequence[int], prompt: Callable[[int], EmbedsPrompt],
                           stop_ids: Sequence[int]) -> list[ServedAnswer]:
        async with slots:
            prompts = [prompt(index) for index in members]
            payload = embeds_payload(self.endpoint.model, prompts, stop_ids, self.endpoint.seed)
            self.sent_prompts += len(prompts)
            for attempt in range(1, self.endpoint.attempts + 1):
                self.sent_bytes += sum(len(p.embeds) for p in prompts)
                try:
                    return await self._post(session, payload, prompts)
                except _RETRIED as error:
                    wait = self.ledger.note_failure(error)
                    if attempt == self.endpoint.attempts:
                        raise
                    logger.warning("request failed (%s); retrying", error)
                    await asyncio.sleep(max(wait, RETRY_SECONDS))
        raise AssertionError("unreachable: attempts >= 1")

    async def _post(self, session: aiohttp.ClientSession, payload: dict[str, Any],
                    prompts: Sequence[EmbedsPrompt]) -> list[ServedAnswer]:
        where = f"{self.endpoint.public_url}, request for {'; '.join(p.name for p in prompts)}"
        guarded = GuardedSession(session, lambda: where)
        start_call_clock()
        async with guarded.post(self.endpoint.url, json=payload,
                                headers=self.endpoint.headers) as response:
            if response.status in REFUSED_STATUSES:
                raise refusal(where, response.status, await response.text(), prompts)
            if not response.ok:
                logger.warning("API request failed with status %d: %s", response.status,
                               await response.text())
            response.raise_for_status()
            answer = await response.json()
        cost = cost_of_response(answer)
        self.ledger.note_response(answer)
        choices = sorted(answer["choices"], key=lambda choice: int(choice["index"]))
        return [ServedAnswer(p.settings.cut_at_stop(str(choice["text"])), cost)
                for p, choice in zip(prompts, choices, strict=True)]

    def totals(self) -> dict[str, float]:
        """What was sent: prompts, and the bytes of their base64 embeddings (retries too)."""
        return {"prompt_embeds_prompts": float(self.sent_prompts),
                "prompt_embeds_bytes": float(self.sent_bytes)}
