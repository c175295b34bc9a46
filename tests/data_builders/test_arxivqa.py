"""ArxivQA generation against a local OpenAI-compatible server with scripted answers."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bench.substrate.errors import InputError
from bench.substrate.manifest import write_manifest
from data_builders._secrets import mask_secrets, masked_output, register_secret
from data_builders.arxivqa.cache import ResponseCache
from data_builders.arxivqa.cli import main
from data_builders.arxivqa.client import ClientSettings, Job, Usage, run_jobs
from data_builders.arxivqa.validate import extract_pairs, validate
from tests.data_builders.conftest import REPO, random_text, shared_path

KEY = "sk-test-secret-value-123"
Reply = tuple[int, dict[str, str], str, float]
Script = Callable[[str, str, int], Reply]


def context_of(prompt: str) -> str:
    return prompt.split("context: ", 1)[1].split("\ntask:", 1)[0]


def good_pairs(prompt: str) -> list[dict[str, Any]]:
    """Valid pairs: answers are 3-word spans of the context, questions share no word."""
    words = context_of(prompt).split()
    number = int(re.search(r"design the (\d+) best", prompt).group(1))  # type: ignore[union-attr]
    return [
        {
            "id": i + 1,
            "question": f"Which phrase is number {i + 1}?",
            "answer": " ".join(words[3 * i : 3 * i + 3]),
        }
        for i in range(number)
    ]


class ChatServer:
    """POST /v1/chat/completions answered by ``script(marker, prompt, attempt)``."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.log: list[tuple[str, int]] = []  # (prompt, status) of responses sent
        self.arrivals: Counter[str] = Counter()
        self.times: dict[str, list[float]] = {}
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                prompt = body["messages"][0]["content"]
                marker = context_of(prompt).split()[0]
                with server.lock:
                    attempt = server.arrivals[prompt]
                    server.arrivals[prompt] += 1
                    server.times.setdefault(marker, []).append(time.monotonic())
                status, headers, content, delay = server.script(marker, prompt, attempt)
                time.sleep(delay)
                payload = (
                    {"error": {"message": content or "scripted", "type": "x"}}
                    if status != 200
                    else {
                        "id": "cmpl",
                        "object": "chat.completion",
                        "created": 0,
                        "model": body["model"],
                        "choices": [
                            {
                                "index": 0,
                                "finish_reason": "stop",
                                "message": {"role": "assistant", "content": content},
                            }
                        ],
                        "usage": {
                            "prompt_tokens": 100,
                            "completion_tokens": 20,
                            "total_tokens": 120,
                        },
                    }
                )
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    return
                with server.lock:
                    server.log.append((prompt, status))

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def answered(self) -> Counter[str]:
        with self.lock:
            return Counter(p for p, status in self.log if status == 200)


def write_corpus(folder: Path, markers: list[str], words: int = 60) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    texts = [f"{m} {random_text(i, words)}" for i, m in enumerate(markers)]
    pq.write_table(
        pa.table(
            {
                "id": [f"2401.{i:05d}" for i in range(len(markers))],
                "title": markers,
                "text": texts,
                "published": ["2024-01-02"] * len(markers),
                "categories": [["cs.CL"]] * len(markers),
                "n_tokens": [96] * len(markers),
            }
        ),
        folder / "test.parquet",
    )
    write_manifest(folder, {"builder": "tests"}, "write_corpus in tests/data_builders")
    return folder


def args(server: ChatServer, corpus: Path, out: Path, *extra: str) -> list[str]:
    return [
        "--corpus",
        str(corpus),
        "--model",
        "scripted-model",
        "--base-url",
        server.url,
        "--api-key-env",
        "ARXIVQA_TEST_KEY",
        "--out",
        str(out),
        "--backoff",
        "0.05",
        "--timeout",
        "1",
        *extra,
    ]


def scenario(marker: str, prompt: str, attempt: int) -> Reply:
    pairs = good_pairs(prompt)
    text = json.dumps(pairs)
    if marker == "VALID":
        words = context_of(prompt).split()
        extra = [
            {"question": "What is invented?", "answer": "not in the context at all"},
            {"question": f"Why {words[1]} {words[2]}?", "answer": f"{words[1]} {words[2]}"},
            {"question": pairs[0]["question"].upper(), "answer": words[20]},
            {"question": "  ", "answer": words[21]},
        ]
        return 200, {}, json.dumps(pairs[:3] + extra), 0
    if marker == "FENCED":
        return 200, {}, f"```json\n{text}\n```", 0
    if marker == "PROSE":
        return 200, {}, f"Sure! Here are the pairs:\n{text}\nI hope this helps [1].", 0
    if marker == "GARBAGE":
        return 200, {}, "I cannot help with that.", 0
    if marker == "LIMITED" and attempt == 0:
        return 429, {"Retry-After": "1"}, "", 0
    if marker == "BROKEN" and attempt == 0:
        return 500, {}, "", 0
    if marker == "HANG" and attempt == 0:
        return 200, {}, text, 2.5
    return 200, {}, text, 0


@pytest.fixture
def env_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARXIVQA_TEST_KEY", KEY)


def test_scripted_answers(tmp_path: Path, env_key: None) -> None:
    markers = ["VALID", "FENCED", "PROSE", "GARBAGE", "LIMITED", "BROKEN", "HANG"]
    corpus = write_corpus(tmp_path / "corpus", markers)
    out = tmp_path / "out"
    server = ChatServer(scenario)
    try:
        assert (
            main(
                args(
                    server,
                    corpus,
                    out,
                    "--concurrency",
                    "3",
                    "--price-input",
                    "1",
                    "--price-output",
                    "2",
                )
            )
            == 0
        )
    finally:
        server.close()
    limited = server.times["LIMITED"]
    assert len(limited) == 2 and limited[1] - limited[0] >= 0.95, "Retry-After honoured"
    assert len(server.times["BROKEN"]) == 2 and len(server.times["HANG"]) == 2
    lines = [json.loads(line) for line in (out / "test.jsonl").read_text().splitlines()]
    assert lines[0] == {"header": {"dataset": "ArxivQA", "split": "test"}}
    by_marker = {line["context"].split()[0]: line for line in lines[1:]}
    assert set(by_marker) == set(markers) - {"GARBAGE"}
    assert all(len(by_marker[m]["qas"]) == 5 for m in ("FENCED", "PROSE", "LIMITED", "HANG"))
    assert len(by_marker["VALID"]["qas"]) == 3
    for line in lines[1:]:
        for qa in line["qas"]:
            ((start, end),) = qa["detected_answers"][0]["char_spans"]
            assert line["context"][start : end + 1] == qa["answers"][0]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["rejected"] == {
        "answer_in_question": 1,
        "answer_not_in_context": 1,
        "duplicate_question": 1,
        "empty_question": 1,
        "unparseable_response": 1,
    }
    assert manifest["tokens"] == {"prompt_tokens": 700, "completion_tokens": 140}
    assert manifest["estimated_cost_usd"] == pytest.approx(700e-6 + 280e-6)
    table = pq.read_table(out / "test.parquet")
    assert table.num_rows == 3 + 5 * 5
    assert len(set(table.column("qid").to_pylist())) == table.num_rows
    assert "answer_not_in_context | 1" in (out / "README.md").read_text()
    for path in out.rglob("*"):
        if path.is_file():
            assert KEY not in path.read_text(encoding="utf-8", errors="replace")


def test_failures_exit_nonzero_and_resume(
    tmp_path: Path, env_key: None, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = write_corpus(tmp_path / "corpus", ["OK", "DOWN"])
    out = tmp_path / "out"
    server = ChatServer(lambda m, p, a: (503, {}, "", 0) if m == "DOWN" else scenario(m, p, a))
    try:
        assert main(args(server, corpus, out, "--max-retries", "1")) == 1
        assert "1 request(s) failed" in capsys.readouterr().err
        assert not (out / "test.jsonl").exists()
        server.script = scenario
        assert main(args(server, corpus, out)) == 0
    finally:
        server.close()
    assert max(server.answered().values()) == 1


def test_missing_key_and_unauthorised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    corpus = write_corpus(tmp_path / "corpus", ["OK"])
    server = ChatServer(lambda m, p, a: (401, {}, "", 0))
    try:
        monkeypatch.delenv("ARXIVQA_TEST_KEY", raising=False)
        assert main(args(server, corpus, tmp_path / "out")) == 2
        monkeypatch.setenv("ARXIVQA_TEST_KEY", KEY)
        assert main(args(server, corpus, tmp_path / "out")) == 1
        assert len(server.log) == 1, "a 401 is not retried"
    finally:
        server.close()


def echo_key(marker: str, prompt: str, attempt: int) -> Reply:
    """A server that repeats the key it was sent: in headers, error bodies and answers."""
    if marker == "DENIED":
        return 401, {"X-Received-Key": KEY}, f"Incorrect API key provided: {KEY}.", 0
    if marker == "FLAKY":
        return 500, {"X-Received-Key": KEY}, f"upstream refused Bearer {KEY}", 0
    return 200, {"X-Received-Key": KEY}, f"{json.dumps(good_pairs(prompt))}\nkey was {KEY}", 0


def assert_no_key_in_files(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path


@pytest.mark.parametrize("marker", ["DENIED", "FLAKY", "ANSWERED"])
def test_key_echoed_by_the_server_is_masked(
    tmp_path: Path, env_key: None, capsys: pytest.CaptureFixture[str], marker: str
) -> None:
    corpus = write_corpus(tmp_path / "corpus", [marker])
    out = tmp_path / "out"
    server = ChatServer(echo_key)
    try:
        code = main(args(server, corpus, out, "--max-retries", "1"))
    finally:
        server.close()
    captured = capsys.readouterr()
    assert KEY not in captured.out + captured.err
    assert_no_key_in_files(tmp_path)
    if marker == "ANSWERED":
        assert code == 0
        (entry,) = (out / "cache").glob("*.json")
        assert json.loads(entry.read_text())["content"].endswith("key was ***")
    else:
        assert code == 1
        assert "Traceback" not in captured.err
    if marker == "DENIED":
        assert "HTTP 401" in captured.err and "Incorrect API key provided: ***." in captured.err


def test_request_errors_are_masked_where_built(tmp_path: Path) -> None:
    """The recorded error texts (kept in the usage counts) never hold the key."""
    register_secret(KEY)
    server = ChatServer(echo_key)
    settings = ClientSettings(base_url=server.url, api_key=KEY, model="m", max_retries=0)
    usage = Usage()
    jobs = [Job("c", "context: DENIED words\ntask: x", "k")]
    try:
        asyncio.run(run_jobs(jobs, settings, ResponseCache(tmp_path / "cache"), usage))
    finally:
        server.close()
    assert usage.failed == 1
    assert usage.errors == ["HTTP 401: Error code: 401 - Incorrect API key provided: ***."]


def test_debug_output_masks_the_key(tmp_path: Path) -> None:
    """With --debug the traceback (which holds the server's error body) and the client
    library's own debug log are masked too."""
    corpus = write_corpus(tmp_path / "corpus", ["DENIED"])
    server = ChatServer(echo_key)
    env = {**os.environ, "ARXIVQA_TEST_KEY": KEY, "OPENAI_LOG": "debug"}
    command = [
        sys.executable,
        "-m",
        "bench.build_arxivqa",
        *args(server, corpus, tmp_path / "out"),
        "--debug",
    ]
    try:
        run = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    finally:
        server.close()
    assert run.returncode == 1
    assert "Traceback" in run.stderr and "HTTP Response: POST 401" in run.stderr
    assert "Incorrect API key provided: ***." in run.stderr
    assert KEY not in run.stdout + run.stderr
    assert_no_key_in_files(tmp_path)


def test_unexpected_error_with_the_key_is_masked(
    tmp_path: Path,
    env_key: None,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Any text written to stdout/stderr is masked, also a traceback nobody formatted."""
    import data_builders.arxivqa.build as qa_build

    def broken(*_: object) -> None:
        raise RuntimeError(f"assembling failed near Bearer {KEY}")

    monkeypatch.setattr(qa_build, "assemble", broken)
    corpus = write_corpus(tmp_path / "corpus", ["OK"])
    server = ChatServer(scenario)
    try:
        assert main(args(server, corpus, tmp_path / "out")) == 1
    finally:
        server.close()
    err = capsys.readouterr().err
    assert "RuntimeError: assembling failed near Bearer ***" in err
    assert KEY not in err


def test_mask_sees_keys_written_in_pieces(capsys: pytest.CaptureFixture[str]) -> None:
    special = 'k3y/with+"quote"'
    register_secret(KEY)
    register_secret(special)
    with masked_output():
        sys.stderr.write(f"partial {KEY[:5]}")
        sys.stderr.write(f"{KEY[5:]} and {quote(special, safe='')}\n")
        print(json.dumps({"echo": special}))
        sys.stderr.write(f"no line end {KEY}")
    captured = capsys.readouterr()
    assert captured.err == "partial *** and ***\nno line end ***"
    assert captured.out == json.dumps({"echo": "***"}) + "\n"
    assert mask_secrets(f"{special}{KEY}") == "******"
    register_secret("short")
    assert mask_secrets("a short word") == "a short word", "placeholders are not secrets"


@pytest.mark.slow
def test_kill_and_resume(tmp_path: Path) -> None:
    markers = [f"M{i}" for i in range(12)]
    corpus = write_corpus(tmp_path / "corpus", markers)
    out = tmp_path / "out"
    server = ChatServer(lambda m, p, a: (200, {}, json.dumps(good_pairs(p)), 0.3))
    env = {**os.environ, "ARXIVQA_TEST_KEY": KEY}
    command = [
        sys.executable,
        "-m",
        "bench.build_arxivqa",
        *args(server, corpus, out, "--concurrency", "2"),
    ]
    try:
        process = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 60
        while len(list((out / "cache").glob("*.json"))) < 4:
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
        process.wait()
        cached = {json.loads(p.read_text())["prompt"] for p in (out / "cache").glob("*.json")}
        assert 4 <= len(cached) < 12
        subprocess.run(command, cwd=REPO, env=env, check=True, capture_output=True)
    finally:
        server.close()
    answered = server.answered()
    assert all(answered[prompt] == 1 for prompt in cached), "an answered request was resent"
    assert sum(answered.values()) <= 12 + 2  # at most the requests in flight at the kill
    lines = (out / "test.jsonl").read_text().splitlines()[1:]
    contexts = [json.loads(line)["context"].split()[0] for line in lines]
    assert sorted(contexts) == sorted(markers)
    qids = [qa["qid"] for line in lines for qa in json.loads(line)["qas"]]
    assert len(qids) == len(set(qids)) == 12 * 5


def test_parsing_and_validation_units() -> None:
    pairs = [{"question": "q?", "answer": "b c"}]
    assert extract_pairs(json.dumps(pairs)) == pairs
    assert extract_pairs("```\n" + json.dumps(pairs) + "\n```") == pairs
    assert extract_pairs('Here {"pairs": ' + json.dumps(pairs) + "} done") == pairs
    assert extract_pairs("[1, 2") is None
    rejected: Counter[str] = Counter()
    kept = validate(
        [{"question": "Q?", "answer": '"b  c."'}, "junk", {"question": "Z?", "answer": ""}],
        "a b\nc d",
        rejected,
    )
    assert [(p.answer, p.start, p.end) for p in kept] == [("b c", 2, 5)]
    assert rejected == Counter({"malformed_item": 1, "empty_answer": 1})


def test_a_damaged_cached_answer_is_bad_input_naming_its_file(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "cache")
    cache.put("key", {"content": "x"})
    assert cache.get("key") == {"content": "x"}
    cache.path("key").write_bytes(b'{"content": "x')
    with pytest.raises(InputError) as caught:
        cache.get("key")
    assert str(caught.value).startswith(f"{cache.path('key')}: not a cached answer (")
    assert str(caught.value).endswith("; delete the file to ask again")


def test_output_feeds_the_prepare_step(tmp_path: Path, env_key: None) -> None:
    prepare = pytest.importorskip("bench.prepare.cli")
    gpt2 = shared_path("data", "gpt2_tokenizer")
    corpus = write_corpus(tmp_path / "corpus", ["A", "B"])
    server = ChatServer(scenario)
    try:
        assert main(args(server, corpus, tmp_path / "qa")) == 0
    finally:
        server.close()
    source = tmp_path / "qa" / "test.jsonl"
    assert (
        prepare.main(
            [
                "arxivqa",
                "--source",
                str(source),
                "--out",
                str(tmp_path / "data"),
                "--tokenizer",
                str(gpt2),
                "--quiet",
            ]
        )
        == 0
    )
    prepared = pq.read_table(tmp_path / "data" / "arxivqa" / "test.parquet")
    ours = pq.read_table(tmp_path / "qa" / "test.parquet")
    assert sorted(prepared.column("qid").to_pylist()) == sorted(ours.column("qid").to_pylist())
