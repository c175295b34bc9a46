"""A local OpenAI-compatible server for tests: greedy answers from a tiny HF model.

Answers ``POST /v1/completions`` (prompt string(s) or token ids, or vLLM's ``prompt_embeds``:
base64 of ``torch.save``d ``(length, hidden)`` tensors, read with ``weights_only=True`` and
fed to the model as ``inputs_embeds``) and ``POST /v1/chat/completions`` (messages, through
the tokenizer's chat template), logs every answered request body with the prompt tokens (or
embeddings) it read, and serves scheduled faults: by arrival number, a ``429`` with
``Retry-After``, a ``500``, or a hang longer than the client's timeout (the connection is
then closed without an answer). As vLLM does, a request with prompt embeddings is refused
with ``400`` when it asks for ``echo`` or ``prompt_logprobs``, when the server was not
started with them enabled, or when a tensor is not a float tensor of the model's hidden size.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

COMPLETIONS = "/v1/completions"
CHAT = "/v1/chat/completions"


@dataclass
class Answered:
    """One answered request: its path, JSON body, headers and what the model read/wrote."""

    path: str
    body: dict[str, Any]
    authorization: str | None
    prompt_ids: list[list[int]]
    completion_tokens: list[int]
    prompt_embeds: list[Any] = field(default_factory=list)


@dataclass
class ServerLog:
    arrivals: int = 0
    answered: list[Answered] = field(default_factory=list)
    faults_served: list[str] = field(default_factory=list)

    @property
    def prompt_tokens(self) -> int:
        return sum(len(ids) for a in self.answered for ids in a.prompt_ids) + \
            sum(int(e.shape[0]) for a in self.answered for e in a.prompt_embeds)


class BadRequest(Exception):
    """A request the server answers with 400 and this message."""


EMBEDS_DTYPES = ("float32", "bfloat16", "float16")


def read_prompt_embeds(body: dict[str, Any], hidden_size: int) -> list[Any]:
    """The tensors of ``prompt_embeds`` (one base64 text or a list), checked as vLLM does."""
    import base64
    import binascii
    import io

    import torch

    if body.get("echo"):
        raise BadRequest("Echo is unsupported with prompt embeds.")
    if body.get("prompt_logprobs") is not None:
        raise BadRequest("prompt_logprobs is not compatible with prompt embeds.")
    texts = body["prompt_embeds"]
    tensors = []
    for text in [texts] if isinstance(texts, str) else texts:
        try:
            tensor = torch.load(io.BytesIO(base64.b64decode(text, validate=True)),
                                weights_only=True, map_location="cpu")
        except (binascii.Error, RuntimeError, ValueError) as error:
            raise BadRequest(f"prompt_embeds could not be loaded: {error}") from None
        if not isinstance(tensor, torch.Tensor) or \
                str(tensor.dtype).removeprefix("torch.") not in EMBEDS_DTYPES:
            raise BadRequest("prompt_embeds must be a float32, bfloat16 or float16 tensor")
        if tensor.dim() > 2:
            tensor = tensor.squeeze(0)
        if tensor.dim() != 2 or tensor.shape[1] != hidden_size:
            raise BadRequest(f"prompt_embeds of shape {tuple(tensor.shape)} do not fit the "
                             f"model's hidden size {hidden_size}")
        tensors.append(tensor)
    return tensors


class TinyModelServer:
    """The model, the log and the fault schedule behind the HTTP handler."""

    def __init__(self, model_dir: Path, chat_template: str | None = None,
                 retry_after: int = 1, hang_seconds: float = 4.0,
                 enable_prompt_embeds: bool = True) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        torch.manual_seed(0)
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        if chat_template is not None:
            self.tokenizer.chat_template = chat_template
        self.model = AutoModelForCausalLM.from_pretrained(str(model_dir))
        self.model.eval()  # type: ignore[no-untyped-call]
        self.log = ServerLog()
        self.faults: dict[int, str] = {}
        self.retry_after = retry_after
        self.hang_seconds = hang_seconds
        self.delay_seconds = 0.0
        self.enable_prompt_embeds = enable_prompt_embeds
        self._lock = threading.Lock()

    def reset(self, faults: dict[int, str] | None = None, delay_seconds: float = 0.0) -> None:
        """Forget the log; ``faults`` maps arrival numbers (from 0) to 429/500/timeout;
        every answer then takes at least ``delay_seconds``."""
        with self._lock:
            self.log = ServerLog()
            self.faults = dict(faults or {})
            self.delay_seconds = delay_seconds

    def arrive(self) -> str | None:
        """Count an arrival; the fault to serve for it, if any."""
        with self._lock:
            number = self.log.arrivals
            self.log.arrivals += 1
            fault = self.faults.get(number)
            if fault is not None:
                self.log.faults_served.append(fault)
            return fault

    def answer(self, path: str, body: dict[str, Any], authorization: str | None
               ) -> dict[str, Any]:
        time.sleep(self.delay_seconds)
        if path == COMPLETIONS and "prompt_embeds" in body:
            return self._answer_embeds(path, body, authorization)
        prompts = self._prompt_ids(path, body)
        limit = int(body.get("max_tokens") or body.get("max_completion_tokens") or 16)
        stops = body.get("stop") or []
        stops = [stops] if isinstance(stops, str) else list(stops)
        texts, counts = [], []
        with self._lock:
            for ids in prompts:
                text, count = self._generate(ids, limit, stops)
                texts.append(text)
                counts.append(count)
            self.log.answered.append(Answered(path, body, authorization, prompts, counts))
        return self._response(path, body, texts, sum(len(ids) for ids in prompts), counts)

    def _answer_embeds(self, path: str, body: dict[str, Any], authorization: str | None
                       ) -> dict[str, Any]:
        if not self.enable_prompt_embeds:
            raise BadRequest("You must set `--enable-prompt-embeds` to input `prompt_embeds`.")
        tensors = read_prompt_embeds(body, int(self.model.config.hidden_size))
        limit = int(body.get("max_tokens") or 16)
        stops = body.get("stop") or []
        stops = [stops] if isinstance(stops, str) else list(stops)
        stop_ids = {int(i) for i in body.get("stop_token_ids") or []}
        texts, counts = [], []
        with self._lock:
            for tensor in tensors:
                text, count = self._generate_from_embeds(tensor, limit, stops, stop_ids)
                texts.append(text)
                counts.append(count)
            self.log.answered.append(Answered(path, body, authorization, [], counts, tensors))
        return self._response(path, body, texts, sum(int(t.shape[0]) for t in tensors), counts)

    def _response(self, path: str, body: dict[str, Any], texts: list[str], prompt_tokens: int,
                  counts: list[int]) -> dict[str, Any]:
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": sum(counts)}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        if path == CHAT:
            choices = [{"index": i, "message": {"role": "assistant", "content": text},
                        "finish_reason": "stop"} for i, text in enumerate(texts)]
        else:
            choices = [{"index": i, "text": text, "finish_reason": "stop"}
                       for i, text in enumerate(texts)]
        return {"id": "cmpl-test", "object": "completion", "model": body.get("model"),
                "choices": choices, "usage": usage}

    def _prompt_ids(self, path: str, body: dict[str, Any]) -> list[list[int]]:
        if path == CHAT:
            text = self.tokenizer.apply_chat_template(body["messages"], tokenize=False,
                                                      add_generation_prompt=True)
            return [self.tokenizer(text, add_special_tokens=False)["input_ids"]]
        prompt = body["prompt"]
        if isinstance(prompt, str):
            prompt = [prompt]
        if prompt and isinstance(prompt[0], int):
            prompt = [prompt]
        return [list(p) if isinstance(p, list) else self.tokenizer(p)["input_ids"]
                for p in prompt]

    def _generate(self, ids: list[int], limit: int, stops: list[str]) -> tuple[str, int]:
        import torch

        with torch.no_grad():
            output = self.model.generate(torch.tensor([ids]), max_new_tokens=limit,
                                         do_sample=False, pad_token_id=0,
                                         attention_mask=torch.ones(1, len(ids), dtype=torch.long))
        new = output[0, len(ids):].tolist()
        eos = self.tokenizer.eos_token_id
        if eos in new:
            new = new[:new.index(eos)]
        return self._text(new, stops)

    def _generate_from_embeds(self, embeds: Any, limit: int, stops: list[str],
                              stop_ids: set[int]) -> tuple[str, int]:
        """Greedy tokens from ``inputs_embeds`` (in the model's dtype) until a stop id (or the
        model's EOS), a stop string or ``limit`` tokens."""
        import torch

        ends = sorted(stop_ids | {int(self.tokenizer.eos_token_id)})
        inputs = embeds.to(self.model.dtype)[None]
        with torch.no_grad():
            output = self.model.generate(inputs_embeds=inputs, max_new_tokens=limit,
                                         do_sample=False, pad_token_id=0, eos_token_id=ends,
                                         attention_mask=torch.ones(inputs.shape[:2],
                                                                   dtype=torch.long))
        new = output[0].tolist()
        cut = [i for i, token in enumerate(new) if token in ends]
        return self._text(new[:cut[0]] if cut else new, stops)

    def _text(self, new: list[int], stops: list[str]) -> tuple[str, int]:
        for count in range(1, len(new) + 1):
            text = str(self.tokenizer.decode(new[:count], skip_special_tokens=True))
            hits = [text.index(stop) for stop in stops if stop and stop in text]
            if hits:
                return text[:min(hits)], count
        return str(self.tokenizer.decode(new, skip_special_tokens=True)), len(new)


def _handler(server: TinyModelServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def do_GET(self) -> None:
            self._send(404, {"error": "not found"})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            if self.path not in (COMPLETIONS, CHAT):
                self._send(404, {"error": "not found"})
                return
            fault = server.arrive()
            if fault is None:
                try:
                    self._send(200, server.answer(self.path, body,
                                                  self.headers.get("Authorization")))
                except BadRequest as refused:
                    self._send(400, {"error": {"message": str(refused), "type": "BadRequestError",
                                               "param": None, "code": 400}})
                return
            if fault == "429":
                self._send(429, {"error": "rate limited"},
                           {"Retry-After": str(server.retry_after)})
                return
            if fault == "500":
                self._send(500, {"error": "internal error"})
                return
            if fault == "timeout":
                time.sleep(server.hang_seconds)
                self.close_connection = True

        def _send(self, status: int, payload: dict[str, Any],
                  headers: dict[str, str] | None = None) -> None:
            data = json.dumps(payload).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass

    return Handler


@contextmanager
def serving(server: TinyModelServer) -> Iterator[str]:
    """Serve on 127.0.0.1 (a free port) in a thread; yields the base URL ``http://host:port``."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(server))
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        host, port = httpd.server_address[:2]
        yield f"http://{host!s}:{port}"
    finally:
        httpd.shutdown()
        httpd.server_close()
