"""A served answer is checked before it is scored or counted.

A stub OpenAI-compatible server on 127.0.0.1 sends, in turn, the replies a test queues:
malformed answers, a ``Retry-After`` that is not a number, an answer trickled byte by byte
(a slow-loris server) or one far larger than its ``max_tokens`` allow. The served models
must retry such an answer or end with one line naming the request; never score it as an
answer, never count its usage.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from lm_eval.api.instance import Instance

from bench.lmeval.api_answers import UnusableAnswerError
from bench.lmeval.api_models import (
    CompressedChatCompletionsLM,
    CompressedCompletionsLM,
    ServedCompression,
)

COMPLETIONS = "/v1/completions"
CHAT = "/v1/chat/completions"
TASK = "compressed_squad"
MAX_GEN_TOKS = 8
VALID_USAGE = {"prompt_tokens": 11, "completion_tokens": 2, "total_tokens": 13}


@dataclass
class Reply:
    """One reply of the stub: a status, headers and a body (None: a valid answer), sent at
    once or a byte every ``trickle`` seconds."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    trickle: float = 0.0


def valid_answer(request: dict[str, Any]) -> dict[str, Any]:
    """One choice per prompt of ``request``, texts ``answer 0``, ``answer 1`` ..."""
    if "messages" in request:
        return {"choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": "answer 0"}}],
                "usage": dict(VALID_USAGE)}
    prompts = request["prompt"]
    count = len(prompts) if prompts and not isinstance(prompts[0], int) else 1
    return {"choices": [{"index": i, "text": f"answer {i}", "finish_reason": "stop"}
                        for i in range(count)],
            "usage": {key: value * count for key, value in VALID_USAGE.items()}}


class StubServer:
    """The queue of replies and the requests received, behind the HTTP handler."""

    def __init__(self) -> None:
        self.replies: deque[Reply] = deque()
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def queue(self, *replies: Reply) -> None:
        with self.lock:
            self.replies = deque(replies)
            self.requests = []

    def next_reply(self, request: dict[str, Any]) -> Reply:
        with self.lock:
            self.requests.append(request)
            return self.replies.popleft() if self.replies else Reply()


def _raw_response(reply: Reply, request: dict[str, Any]) -> bytes:
    body = reply.body if reply.body is not None else valid_answer(request)
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    head = [f"HTTP/1.1 {reply.status} Stub", "Content-Type: application/json",
            f"Content-Length: {len(data)}", "Connection: close",
            *(f"{k}: {v}" for k, v in reply.headers.items())]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + data


def _handler(stub: StubServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            request = json.loads(self.rfile.read(length) or b"{}")
            reply = stub.next_reply(request)
            raw = _raw_response(reply, request)
            self.close_connection = True
            try:
                if reply.trickle <= 0:
                    self.wfile.write(raw)
                    return
                for index in range(len(raw)):
                    self.wfile.write(raw[index:index + 1])
                    self.wfile.flush()
                    time.sleep(reply.trickle)
            except (BrokenPipeError, ConnectionResetError):
                return

    return Handler


@pytest.fixture(scope="module")
def stub() -> Iterator[tuple[StubServer, str]]:
    server = StubServer()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(server))
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    host, port = httpd.server_address[:2]
    try:
        yield server, f"http://{host!s}:{port}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """lm-eval waits at least a second between attempts; the tests retry at once."""
    import tenacity
    from lm_eval.models import api_models

    monkeypatch.setattr(api_models, "wait_exponential", lambda **_: tenacity.wait_none())


ModelFactory = Callable[..., ServedCompression]


@pytest.fixture()
def served_model(stub: tuple[StubServer, str], tiny_model_dir: Path) -> ModelFactory:
    """A served model on the stub: one attempt, a 1 s deadline unless told otherwise."""
    _, url = stub

    def build(chat: bool = False, **options: Any) -> ServedCompression:
        settings = {"max_retries": 1, "timeout": 1, **options}
        if chat:
            return CompressedChatCompletionsLM(model="stub", base_url=url + CHAT,
                                               tokenizer=str(tiny_model_dir),
                                               compression_cache="off", **settings)
        return CompressedCompletionsLM(model="stub", base_url=url + COMPLETIONS,
                                       tokenizer=str(tiny_model_dir), compression_cache="off",
                                       **settings)

    return build


def instance(doc_id: int) -> Instance:
    """A request of the SQuAD task (as lm-eval builds it) for document ``doc_id``."""
    doc = {"context": f"The cat number {doc_id} sat on the mat.", "question": "Where?",
           "instruction": "Answer the question."}
    prompt = f"{doc['instruction']} Context: {doc['context']} Question: Where? Answer:"
    gen_kwargs = {"until": ["\n"], "max_gen_toks": MAX_GEN_TOKS}
    return Instance("generate_until", doc, (prompt, gen_kwargs), idx=0,
                    metadata=(TASK, doc_id, 1))


def _usage(**counts: Any) -> dict[str, Any]:
    return {"choices": [{"index": 0, "text": "answer 0"}], "usage": {**VALID_USAGE, **counts}}


ONE_PROMPT = {
    "no choices": {"usage": VALID_USAGE},
    "empty choices": {"choices": [], "usage": VALID_USAGE},
    "choices not a list": {"choices": {"index": 0, "text": "x"}},
    "null text": {"choices": [{"index": 0, "text": None}], "usage": VALID_USAGE},
    "text not a string": {"choices": [{"index": 0, "text": 7}]},
    "index missing": {"choices": [{"text": "answer"}]},
    "not an object": [1, 2],
    "not JSON": b"<html>busy</html>",
    "negative usage": _usage(prompt_tokens=-5),
    "NaN usage": _usage(completion_tokens=float("nan")),
    "Infinity usage": _usage(prompt_tokens=float("inf")),
    "usage as text": _usage(prompt_tokens="11"),
    "more completion tokens than max_tokens": _usage(completion_tokens=MAX_GEN_TOKS + 1),
    "more prompt tokens than the prompt holds": _usage(prompt_tokens=10**9),
}
TWO_PROMPTS = {
    "too few choices": {"choices": [{"index": 0, "text": "a"}], "usage": VALID_USAGE},
    "duplicated indices": {"choices": [{"index": 0, "text": "a"}, {"index": 0, "text": "b"}]},
    "index out of range": {"choices": [{"index": 0, "text": "a"}, {"index": 2, "text": "b"}]},
}


def _assert_refused(model: ServedCompression, requests: list[Instance],
                    stub: StubServer) -> str:
    """The requests end in one line naming them; nothing was answered or counted."""
    with pytest.raises(UnusableAnswerError) as refused:
        model.generate_until(requests)
    message = str(refused.value)
    assert "\n" not in message
    for request in requests:
        assert f"task {TASK}, doc {request.doc_id}" in message
    assert model.ledger.totals()["prompt_tokens"] == 0.0
    assert model.ledger.calls == 0
    assert not model.account.per_task
    assert stub.requests
    return message


@pytest.mark.parametrize("case", ONE_PROMPT, ids=list(ONE_PROMPT))
def test_a_malformed_answer_ends_the_run_naming_the_request(
        case: str, stub: tuple[StubServer, str], served_model: ModelFactory):
    server, _ = stub
    server.queue(Reply(body=ONE_PROMPT[case]))
    _assert_refused(served_model(), [instance(7)], server)


@pytest.mark.parametrize("case", TWO_PROMPTS, ids=list(TWO_PROMPTS))
def test_a_batched_answer_needs_one_choice_per_prompt(
        case: str, stub: tuple[StubServer, str], served_model: ModelFactory):
    server, _ = stub
    server.queue(Reply(body=TWO_PROMPTS[case]))
    _assert_refused(served_model(batch_size=2), [instance(3), instance(4)], server)


CHAT_CASES = {
    "no choices": {"usage": VALID_USAGE},
    "empty choices": {"choices": []},
    "null content": {"choices": [{"index": 0, "message": {"role": "assistant",
                                                           "content": None}}]},
    "no message": {"choices": [{"index": 0, "finish_reason": "content_filter"}]},
}


@pytest.mark.parametrize("case", CHAT_CASES, ids=list(CHAT_CASES))
def test_a_malformed_chat_answer_is_not_an_empty_answer(
        case: str, stub: tuple[StubServer, str], served_model: ModelFactory):
    server, _ = stub
    server.queue(Reply(body=CHAT_CASES[case]))
    _assert_refused(served_model(chat=True), [instance(5)], server)


@pytest.mark.parametrize("concurrent", [1, 2])
def test_a_malformed_answer_is_retried_and_only_the_good_one_counts(
        concurrent: int, stub: tuple[StubServer, str], served_model: ModelFactory):
    server, _ = stub
    server.queue(Reply(body=_usage(completion_tokens=10**6)), Reply(body=ONE_PROMPT["null text"]))
    model = served_model(max_retries=3, num_concurrent=concurrent)
    assert model.generate_until([instance(1)]) == ["answer 0"]
    assert len(server.requests) == 3
    totals = model.ledger.totals()
    assert (totals["failed_attempts"], totals["calls"]) == (2.0, 1.0)
    assert (totals["prompt_tokens"], totals["completion_tokens"]) == (11.0, 2.0)


def test_a_malformed_answer_ends_a_concurrent_run_naming_the_request(
        stub: tuple[StubServer, str], served_model: ModelFactory):
    server, _ = stub
    server.queue(Reply(body=ONE_PROMPT["null text"]))
    _assert_refused(served_model(num_concurrent=2), [instance(9)], server)


@pytest.mark.parametrize("concurrent", [1, 2])
def test_a_retry_after_that_is_not_a_number_is_not_waited_for(
        concurrent: int, stub: tuple[StubServer, str], served_model: ModelFactory):
    server, _ = stub
    server.queue(Reply(status=429, body={"error": "busy"}, headers={"Retry-After": "nan"}))
    model = served_model(max_retries=2, num_concurrent=concurrent)
    assert model.generate_until([instance(2)]) == ["answer 0"]
    totals = model.ledger.totals()
    assert (totals["failed_attempts"], totals["retry_after_seconds"]) == (1.0, 0.0)


@pytest.mark.parametrize("concurrent", [1, 2])
def test_a_slow_loris_server_is_stopped_by_the_whole_request_deadline(
        concurrent: int, stub: tuple[StubServer, str], served_model: ModelFactory):
    server, _ = stub
    server.queue(Reply(trickle=0.02))  # a valid answer, one byte every 20 ms: ~7 s in all
    model = served_model(num_concurrent=concurrent, timeout=1)
    started = time.perf_counter()
    message = _assert_refused(model, [instance(6)], server)
    assert time.perf_counter() - started < 3.0
    assert "within 1 s" in message


@pytest.mark.parametrize("concurrent", [1, 2])
def test_an_answer_larger_than_max_tokens_allow_is_not_read(
        concurrent: int, stub: tuple[StubServer, str], served_model: ModelFactory):
    server, _ = stub
    huge = {"choices": [{"index": 0, "text": "word " * 1_000_000}], "usage": VALID_USAGE}
    server.queue(Reply(body=huge))
    message = _assert_refused(served_model(num_concurrent=concurrent), [instance(8)], server)
    assert f"max_tokens={MAX_GEN_TOKS}" in message


@pytest.mark.slow  # one lm-eval start-up (~15 s)
def test_the_lm_eval_command_ends_in_one_line_naming_the_request(
        stub: tuple[StubServer, str], tiny_model_dir: Path, demo_data_dir: Path,
        tmp_path: Path):
    import os

    server, url = stub
    server.queue(*[Reply(body=ONE_PROMPT["null text"])] * 3)
    program = Path(sys.executable).with_name("lm_eval")
    env = {**os.environ, "COMPRESSBENCH_DATA": str(demo_data_dir), "HF_HUB_OFFLINE": "1",
           "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    args = (f"model=stub,base_url={url}{COMPLETIONS},tokenizer={tiny_model_dir},"
            "compressor=none,compression_cache=off,max_retries=1")
    done = subprocess.run([str(program), "--tasks", TASK, "--model", "compressed_completions",
                           "--model_args", args, "--limit", "1", "--output_path",
                           str(tmp_path / "out")], env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    # lm-eval's progress bar may share the line (it redraws with a carriage return)
    errors = [line[line.index("error: "):] for line in done.stderr.splitlines()
              if "error: " in line]
    assert len(errors) == 1, done.stderr[-3000:]
    assert f"request for task {TASK}, doc 0: choice 0 has no text (null)" in errors[0]
    assert not list((tmp_path / "out").rglob("results_*.json"))
