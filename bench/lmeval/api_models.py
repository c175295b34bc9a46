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

Soft compressors that declare ``prompt_embeds`` are answered by ``compressed_completions``
from prompt embeddings (:mod:`bench.lmeval.api_embeds`): ``pretrained=`` names the served
model, which is loaded here as ``--model compressed`` loads it (the keys of lm-eval's ``hf``
backend, ``dtype``, ``device`` ..., go to that load); the prompt is cut, compressed and laid
out as that model does it in process, and its decoder input embeddings are sent. Other soft
compressors, and every soft compressor through the chat API, are refused in one line.
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

from bench.compressors import (
    SoftDecoder,
    TargetModel,
    build_compressor,
    capabilities_of,
    validate_options,
)
from bench.generation import GenerationOutput
from bench.harness.accounting import ModelShape
from bench.harness.answering import (
    RunAccount,
    model_info,
    open_cache,
    settings_from_gen_kwargs,
)
from bench.harness.frontend import CompressionFrontEnd
from bench.lmeval.adapter import (
    api_call_settings,
    api_max_gen_toks,
    api_model_arguments,
    api_payload,
    hf_backend_arguments,
    read_request,
    set_prompt,
)
from bench.lmeval.api_answers import GuardedSession, post_for_answer
from bench.lmeval.api_calls import CallLedger, ClockedSemaphore, prompt_key, start_call_clock
from bench.lmeval.api_embeds import EmbedsClient, EmbedsPrompt, Endpoint, encode_prompt_embeds
from bench.lmeval.api_prompts import PromptView
from bench.lmeval.api_soft import (
    PromptEmbedsUnsupported,
    SoftCompressorRefused,
    answers_from_embeddings,
    build_embeddings_compressor,
    load_served_model,
)
from bench.lmeval.api_tokenizers import (
    TokenizerSpec,
    load_counting_tokenizer,
    parse_tokenizer_spec,
)
from bench.substrate.errors import InputError

if TYPE_CHECKING:
    from lm_eval.models.api_models import TemplateAPI as _ApiModel
else:
    _ApiModel = object

DEFAULT_API_KEY_ENV = "OPENAI_API_KEY"
OPENAI_HOST = "api.openai.com"
_SECRETS = ("api_key", "auth_token")


def build_text_compressor(name: str, target: TargetModel, options: dict[str, Any],
                          model: str) -> Any:
    """Compressor ``name``; soft ones are refused, since they need the model's weights."""
    refusal = (f"{model}: compressor {name!r} is a soft compressor; it feeds vectors into the "
               "target model, which needs the model's weights, and a served model reads text "
               "only: use --model compressed with pretrained=... or a hard compressor")
    if capabilities_of(name).family.feeds_the_model:
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
            raise InputError(f"--model_args of {self.model_name}: {', '.join(refused)} would be "
                             "recorded with the results; put the key in an environment variable "
                             "and name it with api_key_env=VAR")
        name = compressor or "none"
        embeds = answers_from_embeddings(name, self.model_name, self.sends_messages)
        if embeds:
            tokenizer = self._embeds_tokenizer(name, tokenizer, kwargs.get("pretrained"))
        spec = parse_tokenizer_spec(tokenizer, self.model_name)
        parameters = api_model_arguments(type(self))
        local = hf_backend_arguments() if embeds else frozenset()
        api_args = {k: v for k, v in kwargs.items() if k in parameters}
        options = {k: v for k, v in kwargs.items() if k not in parameters | local}
        validate_options(name, options)
        self._api_key_env = str(api_key_env)
        self.tokenizer_spec = spec
        super().__init__(**self._api_model_arguments(spec, api_args))
        self._check_api_key(api_key_env != DEFAULT_API_KEY_ENV)
        counting = self._counting_tokenizer(spec)
        self.served_model: Any = None
        self.embeds_client: EmbedsClient | None = None
        self.ledger = CallLedger()
        if embeds:
            hf_args = {k: v for k, v in kwargs.items() if k in local}
            if tokenizer != kwargs.get("pretrained"):
                hf_args["tokenizer"] = tokenizer
            self._use_embeddings(name, options, hf_args, compression_cache)
        else:
            target = TargetModel(name=str(self.model), tokenizer=counting)
            self.compressor = build_text_compressor(name, target, options, self.model_name)
            capabilities = capabilities_of(name)
            self.frontend = CompressionFrontEnd(self.compressor, capabilities, target,
                                                open_cache(compression_cache, capabilities))
            self.account = RunAccount(self.frontend, None)
        self._prompt_names: dict[str, str] = {}

    def _embeds_tokenizer(self, name: str, tokenizer: str | None, pretrained: Any) -> str:
        """The tokenizer of a compressor answered from prompt embeddings: the served model's
        (``pretrained=``, which is required), or ``tokenizer=`` when given."""
        if not pretrained:
            raise InputError(f"--model_args of {self.model_name}: compressor {name!r} is "
                             "answered from prompt embeddings built with the served model's "
                             "weights: pretrained= (its folder or hub id) is required")
        if tokenizer is not None and str(tokenizer).startswith("tiktoken:"):
            raise InputError(f"--model_args of {self.model_name}: compressor {name!r} counts "
                             "and lays out prompts in the served model's own tokenizer; leave "
                             "tokenizer= out (pretrained='s is used)")
        return str(tokenizer or pretrained)

    def _use_embeddings(self, name: str, options: dict[str, Any], hf_args: dict[str, Any],
                        compression_cache: str | None) -> None:
        """Load the served model here, build the compressor on it and the client."""
        pretrained = str(hf_args.pop("pretrained"))
        self.served_model = load_served_model(pretrained, hf_args)
        model = self.served_model.model
        target = TargetModel(name=pretrained, tokenizer=self.served_model.tokenizer,
                             model=model)
        self.compressor = build_embeddings_compressor(name, target, options)
        capabilities = capabilities_of(name)
        batch = self.served_model.batch_size
        self.frontend = CompressionFrontEnd(
            self.compressor, capabilities, target, open_cache(compression_cache, capabilities),
            batch if isinstance(batch, int) else 8)
        self.account = RunAccount(self.frontend, ModelShape.of(model))
        calls = api_call_settings(self)
        endpoint = Endpoint(str(self.base_url), str(_public_url(self.base_url)), str(self.model),
                            dict(self.header), float(self.timeout), calls.concurrent,
                            calls.batch_size, calls.attempts, calls.seed,
                            bool(self.verify_certificate))
        self.embeds_client = EmbedsClient(endpoint, self.ledger)

    def _check_api_key(self, named: bool) -> None:
        """A key is needed when its variable was named, or for OpenAI's own endpoint."""
        needed = named or urlsplit(str(self.base_url or "")).hostname == OPENAI_HOST
        if needed and not os.environ.get(self._api_key_env):
            raise InputError(f"--model_args of {self.model_name}: the API key is read from the "
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
        if self.embeds_client is not None:
            return self._generate_from_embeddings(requests, self.embeds_client)
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

    def _generate_from_embeddings(self, requests: list[Any], client: EmbedsClient
                                  ) -> list[str]:
        """Compress, lay out and embed each prompt as ``--model compressed`` does in
        process, and have the server answer from those embeddings."""
        views = [PromptView.of(read_request(req), False) for req in requests]
        chat = next((view for view in views if view.messages is not None), None)
        if chat is not None:
            raise PromptEmbedsUnsupported(
                f"task {chat.task_name}, doc {chat.doc_id}: a chat-formatted prompt cannot be "
                f"answered from prompt embeddings by {self.model_name}; run without "
                "--apply_chat_template (the compressor lays its prompt out itself)")
        default_max = api_max_gen_toks(self)
        settings = [settings_from_gen_kwargs(view.gen_kwargs, default_max) for view in views]
        window = self.served_model.max_length - max(s.max_new_tokens for s in settings)
        prepared = self.frontend.prepare(views, window)

        def prompt(index: int) -> EmbedsPrompt:
            prep, view = prepared[index], views[index]
            embeds = self.compressor.decoder_input_embeddings(prep.compressed,
                                                              prep.decoder_prompt())
            return EmbedsPrompt(encode_prompt_embeds(embeds),
                                (int(embeds.shape[0]), int(embeds.shape[1])),
                                str(embeds.dtype).removeprefix("torch."), settings[index],
                                f"task {view.task_name}, doc {view.doc_id}")

        answers = client.answer(len(views), prompt, settings, self.compressor.stop_token_ids())
        count = self.frontend.target.count_tokens
        for view, prep, answer in zip(views, prepared, answers, strict=True):
            seconds = answer.cost.seconds
            output = GenerationOutput(answer.text, count(answer.text), seconds, seconds)
            self.account.file(view, prep, output, view.text, answer.cost.usage)
        return [answer.text for answer in answers]

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
        self._refuse_loglikelihood()
        raise NotImplementedError(f"{self.model_name} answers generate_until tasks only")

    def loglikelihood_rolling(self, requests: list[Any], disable_tqdm: bool = False) -> Any:
        self._refuse_loglikelihood()
        raise NotImplementedError(f"{self.model_name} answers generate_until tasks only")

    def _refuse_loglikelihood(self) -> None:
        if self.embeds_client is not None:
            raise PromptEmbedsUnsupported(
                f"{self.model_name}: compressor {self.compressor.name!r} is answered from "
                "prompt embeddings, for which the server returns no prompt logprobs (vLLM "
                "refuses echo and prompt_logprobs with prompt_embeds), so loglikelihood "
                "requests cannot be scored: run generation tasks, or --model compressed")

    def get_model_info(self) -> dict[str, Any]:
        served = {
            "api": self.api,
            "base_url": _public_url(self.base_url),
            "model": self.model,
            "tokenizer": self.tokenizer_spec.describe(),
            "api_key_env": self._api_key_env,
            **self.ledger.totals(),
        }
        if self.embeds_client is not None:
            served.update(input="prompt_embeds", pretrained=self.frontend.target.name,
                          **self.embeds_client.totals())
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
    "PromptEmbedsUnsupported",
    "ServedCompression",
    "SoftCompressorRefused",
    "answers_from_embeddings",
    "build_text_compressor",
]
