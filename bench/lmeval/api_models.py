"""``compressed_completions`` and ``compressed_chat_completions``: compression, then a served
model answers through an OpenAI-compatible API (vLLM, SGLang, TGI, OpenAI).

``--model compressed_completions --model_args model=NAME,base_url=URL/v1/completions,``
``tokenizer=HF_TOKENIZER|tiktoken:ENCODING|tiktoken:FILE.tiktoken,compressor=NAME[,options]``.
Every key that lm-eval's ``local-completions`` (``local-chat-completions``) accepts goes to it
(``num_concurrent``, ``max_retries``, ``timeout``, ``max_length``, ``batch_size`` ...);
``tokenizer``, ``compression_cache`` and ``api_key_env`` (the environment variable holding the
key, default ``OPENAI_API_KEY``) are ours; every other key is a compressor option. Only the
context is compressed, each distinct context once; rates are counted in ``tokenizer``'s tokens.
The chat model sends the prompt (instruction, context, question) as the user message and the
server applies its chat template. With ``compressor=none`` both send exactly the requests of
lm-eval's own models. Answers are read and checked as :mod:`bench.lmeval.api_answers`
describes, with ``timeout`` as the deadline of each whole request.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from lm_eval.api.registry import register_model
from lm_eval.models.openai_completions import LocalChatCompletion, LocalCompletionsAPI

from bench.compressors import SoftDecoder, TargetModel, build_compressor, get_compressor_factory
from bench.generation import GenerationOutput
from bench.harness.answering import (
    RunAccount,
    model_info,
    open_cache,
    settings_from_gen_kwargs,
)
from bench.harness.frontend import CompressionFrontEnd
from bench.lmeval.adapter import (
    api_max_gen_toks,
    api_model_arguments,
    api_payload,
    read_request,
    set_prompt,
)
from bench.lmeval.api_answers import GuardedSession, post_for_answer
from bench.lmeval.api_calls import CallLedger, ClockedSemaphore, prompt_key, start_call_clock
from bench.lmeval.api_prompts import PromptView
from bench.lmeval.api_tokenizers import (
    TokenizerSpec,
    load_counting_tokenizer,
    parse_tokenizer_spec,
)

if TYPE_CHECKING:
    from lm_eval.models.api_models import TemplateAPI as _ApiModel
else:
    _ApiModel = object

DEFAULT_API_KEY_ENV = "OPENAI_API_KEY"
OPENAI_HOST = "api.openai.com"
_SECRETS = ("api_key", "auth_token")
_SOFT_PACKAGE = "bench.compressors.soft"


class SoftCompressorRefused(ValueError):
    """A soft compressor was asked to answer through an API that only reads text."""


def build_text_compressor(name: str, target: TargetModel, options: dict[str, Any],
                          model: str) -> Any:
    """Compressor ``name``; soft ones are refused, since they need the model's weights."""
    refusal = (f"{model}: compressor {name!r} is a soft compressor; it feeds vectors into the "
               "target model, which needs the model's weights, and a served model reads text "
               "only: use --model compressed with pretrained=... or a hard compressor")
    factory = get_compressor_factory(name)
    if str(getattr(factory, "__module__", "")).startswith(_SOFT_PACKAGE):
        raise SoftCompressorRefused(refusal)
    compressor = build_compressor(name, target, options)
    if isinstance(compressor, SoftDecoder):
        raise SoftCompressorRefused(refusal)
    return compressor


def _public_url(url: str | None) -> str | None:
    """``url`` without credentials or query (safe to record)."""
    if not url:
        return url
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class ServedCompression(_ApiModel):  # type: ignore[misc,valid-type]
    """What both served models share; combined with one of lm-eval's API model classes."""

    model_name: str = ""
    api: str = ""
    sends_messages = False

    def __init__(self, tokenizer: str | None = None, compressor: str | None = "none",
                 compression_cache: str | None = None, api_key_env: str = DEFAULT_API_KEY_ENV,
                 **kwargs: Any) -> None:
        refused = [key for key in _SECRETS if key in kwargs]
        if refused:
            raise ValueError(f"--model_args of {self.model_name}: {', '.join(refused)} would be "
                             "recorded with the results; put the key in an environment variable "
                             "and name it with api_key_env=VAR")
        spec = parse_tokenizer_spec(tokenizer, self.model_name)
        parameters = api_model_arguments(type(self))
        api_args = {k: v for k, v in kwargs.items() if k in parameters}
        options = {k: v for k, v in kwargs.items() if k not in parameters}
        self._api_key_env = str(api_key_env)
        self.tokenizer_spec = spec
        super().__init__(**self._api_model_arguments(spec, api_args))
        self._check_api_key(api_key_env != DEFAULT_API_KEY_ENV)
        counting = self._counting_tokenizer(spec)
        target = TargetModel(name=str(self.model), tokenizer=counting)
        self.compressor = build_text_compressor(compressor or "none", target, options,
                                                self.model_name)
        self.frontend = CompressionFrontEnd(self.compressor, target,
                                            open_cache(compression_cache, self.compressor))
        self.account = RunAccount(self.frontend, None)
        self.ledger = CallLedger()
        self._prompt_names: dict[str, str] = {}

    def _check_api_key(self, named: bool) -> None:
        """A key is needed when its variable was named, or for OpenAI's own endpoint."""
        needed = named or urlsplit(str(self.base_url or "")).hostname == OPENAI_HOST
        if needed and not os.environ.get(self._api_key_env):
            raise ValueError(f"--model_args of {self.model_name}: the API key is read from the "
                             f"environment variable {self._api_key_env}, which is not set")

    def _api_model_arguments(self, spec: TokenizerSpec, api_args: dict[str, Any]
                             ) -> dict[str, Any]:
        """Arguments for lm-eval's class; the tokenizer is ours to interpret."""
        return dict(api_args)

    def _counting_tokenizer(self, spec: TokenizerSpec) -> Any:
        """The tokenizer that counts target tokens for rates and the window."""
        return load_counting_tokenizer(spec)

    @property
    def api_key(self) -> str:
        return os.environ.get(self._api_key_env, "")

    def generate_until(self, requests: list[Any], disable_tqdm: bool = False) -> list[str]:
        if not requests:
            return []
        views = [PromptView.of(read_request(req), self.sends_messages) for req in requests]
        default_max = api_max_gen_toks(self)
        window = self.max_length - max(
            settings_from_gen_kwargs(view.gen_kwargs, default_max).max_new_tokens
            for view in views)
        prepared = self.frontend.prepare(views, window)
        prompts = []
        for req, view, prep in zip(requests, views, prepared, strict=True):
            text = prep.text_prompt()
            assert text is not None  # soft compressors are refused at construction
            prompts.append(view.rebuild(text))
            set_prompt(req, prompts[-1])
        self._prompt_names = {prompt_key(prompt): f"task {view.task_name}, doc {view.doc_id}"
                              for prompt, view in zip(prompts, views, strict=True)}
        with self.ledger.watching(self):
            answers: list[str] = super().generate_until(requests, disable_tqdm)
            costs = [self.ledger.cost_of(prompt) for prompt in prompts]
        count = self.frontend.target.count_tokens
        for view, prep, answer, cost in zip(views, prepared, answers, costs, strict=True):
            seconds = cost.seconds if cost is not None else 0.0
            output = GenerationOutput(answer, count(answer), seconds, seconds)
            self.account.file(view, prep, output, view.text,
                              cost.usage if cost is not None else None)
        return answers

    def model_call(self, messages: Any, *, generate: bool = True,
                   gen_kwargs: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        """lm-eval's request, read through :class:`GuardedSession` (a deadline for the whole
        request, a size cap, a checked answer)."""
        start_call_clock()
        payload = api_payload(self, messages, generate, gen_kwargs, **kwargs)
        try:
            return asyncio.run(self._post(payload, messages))
        except Exception as error:
            time.sleep(self.ledger.note_failure(error))
            raise

    async def _post(self, payload: dict[str, Any], messages: Any) -> dict[str, Any]:
        connector = aiohttp.TCPConnector(ssl=self.verify_certificate)
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            guarded = GuardedSession(session, lambda: self._request_name(messages))
            return await post_for_answer(guarded, str(self.base_url), payload, self.header)

    async def amodel_call(self, session: Any, sem: asyncio.Semaphore, messages: Any,
                          **kwargs: Any) -> Any:
        guarded = GuardedSession(session, lambda: self._request_name(messages))
        try:
            return await super().amodel_call(guarded, ClockedSemaphore(sem), messages,
                                             **kwargs)
        except Exception as error:
            await asyncio.sleep(self.ledger.note_failure(error))
            raise

    def _request_name(self, messages: Sequence[Any]) -> str:
        """The endpoint and the documents whose prompts ``messages`` carries."""
        names = [self._prompt_name(message) for message in messages]
        known = [name for name in names if name is not None]
        prompts = "; ".join(known) if len(known) == len(names) else f"{len(names)} prompt(s)"
        return f"{_public_url(self.base_url)}, request for {prompts}"

    def _prompt_name(self, message: Any) -> str | None:
        """The document of a prompt sent as text, or as token ids (cut from the left)."""
        if not isinstance(message, list):
            return self._prompt_names.get(prompt_key(message))
        for prompt, name in self._prompt_names.items():
            ids = list(self.tok_encode(prompt, add_special_tokens=self.add_bos_token))
            if message and ids[-len(message):] == message:
                return name
        return None

    def parse_generations(self, outputs: Any, **kwargs: Any) -> list[str]:
        self.ledger.note_response(outputs)
        parsed: list[str] = super().parse_generations(outputs=outputs, **kwargs)
        return parsed

    def loglikelihood(self, requests: list[Any], disable_tqdm: bool = False) -> Any:
        raise NotImplementedError(f"{self.model_name} answers generate_until tasks only")

    def loglikelihood_rolling(self, requests: list[Any], disable_tqdm: bool = False) -> Any:
        raise NotImplementedError(f"{self.model_name} answers generate_until tasks only")

    def get_model_info(self) -> dict[str, Any]:
        served = {
            "api": self.api,
            "base_url": _public_url(self.base_url),
            "model": self.model,
            "tokenizer": self.tokenizer_spec.describe(),
            "api_key_env": self._api_key_env,
            **self.ledger.totals(),
        }
        return model_info(self.account.run_info(self.compressor, str(self.model),
                                                served=served))


@register_model("compressed_completions")
class CompressedCompletionsLM(ServedCompression, LocalCompletionsAPI):  # type: ignore[misc]
    """Compression, then a completions endpoint answers the prompt string."""

    model_name = "compressed_completions"
    api = "completions"

    def _api_model_arguments(self, spec: TokenizerSpec, api_args: dict[str, Any]
                             ) -> dict[str, Any]:
        arguments = dict(api_args)
        if spec.is_tiktoken:
            # lm-eval would look the encoding up by model name (and download it): set later.
            self._tokenized_requests = bool(arguments.pop("tokenized_requests", True))
            arguments.pop("tokenizer_backend", None)
            return {**arguments, "tokenizer": None, "tokenizer_backend": None}
        arguments.setdefault("tokenizer_backend", "huggingface")
        return {**arguments, "tokenizer": spec.name}

    def _counting_tokenizer(self, spec: TokenizerSpec) -> Any:
        """The target tokenizer; a tiktoken encoding is also handed to lm-eval here."""
        if spec.is_tiktoken:
            counting = load_counting_tokenizer(spec)
            self.tokenizer_backend = "tiktoken"
            self.tokenizer = counting.encoding
            self.tokenized_requests = self._tokenized_requests
            return counting
        if self.tokenizer_backend == "huggingface" and self.tokenizer is not None:
            return self.tokenizer
        return load_counting_tokenizer(spec)


@register_model("compressed_chat_completions")
class CompressedChatCompletionsLM(ServedCompression, LocalChatCompletion):  # type: ignore[misc]
    """Compression, then a chat endpoint answers the prompt sent as the user message."""

    model_name = "compressed_chat_completions"
    api = "chat-completions"
    sends_messages = True


__all__ = [
    "CompressedChatCompletionsLM",
    "CompressedCompletionsLM",
    "ServedCompression",
    "SoftCompressorRefused",
    "build_text_compressor",
]
