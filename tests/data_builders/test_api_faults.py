"""The arXiv API source against a replay server that injects faults into recorded pages.

Every fault must end in the complete corpus or a non-zero exit naming the query and offset,
and a rerun once the fault is gone must give the complete corpus, resuming from the cache.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pyarrow.parquet as pq
import pytest

from data_builders.arxiv.api import EMPTY_CONFIRMATIONS, ApiSettings, build_query, cache_path
from data_builders.arxiv.cli import main, make_parser
from data_builders.arxiv.records import parse_cli_date, parse_timestamp, split_id
from tests.data_builders.conftest import FIXTURES

PAGES = FIXTURES / "api_atom"
PAGE_SIZE = 1
TIMEOUT = 0.5
SPLIT = "2024-02"  # --train-before and --after: both windows hold recorded papers
TRAIN_AFTER = "2010-01"
ENTRY = re.compile(rb"<entry>.*?</entry>", re.DOTALL)
Action = Callable[[BaseHTTPRequestHandler], None]


def recorded_entries() -> dict[str, list[bytes]]:
    """The recorded entries of each query (``train`` or ``eval``), by their window."""
    split, first = parse_cli_date(SPLIT), parse_cli_date(TRAIN_AFTER)
    world: dict[str, list[bytes]] = {"train": [], "eval": []}
    for path in sorted(PAGES.glob("eval_start*.xml")):
        for entry in ENTRY.findall(path.read_bytes()):
            published = parse_timestamp(re.findall(rb"<published>(.*?)<", entry)[0].decode())
            if published >= split:
                world["eval"].append(entry)
            elif published >= first:
                world["train"].append(entry)
    return world


def page(entries: list[bytes], start: int, total: int | None = None) -> bytes:
    """The result page at ``start``: a recorded page's header around ``entries``."""
    head = (PAGES / "eval_start0.xml").read_bytes().split(b"<entry>")[0]
    head = with_start(with_total(head, len(entries) if total is None else total), start)
    return head + b"\n".join(entries[start : start + PAGE_SIZE]) + b"\n</feed>\n"


def paper_ids(entries: list[bytes]) -> set[str]:
    return {split_id(re.findall(rb"<id>(.*?)<", entry)[0].decode())[0] for entry in entries}


def with_start(body: bytes, start: int) -> bytes:
    return re.sub(rb"<opensearch:startIndex>\d+<", b"<opensearch:startIndex>%d<" % start, body)


def with_total(body: bytes, total: int) -> bytes:
    return re.sub(rb"<opensearch:totalResults>\d+<", b"<opensearch:totalResults>%d<" % total, body)


def without_entries(body: bytes, total: int | None = None) -> bytes:
    """The page with its entries removed (and optionally another reported total)."""
    empty = ENTRY.sub(b"", body)
    return empty if total is None else with_total(empty, total)


def reply(status: int, body: bytes, length: int | None = None) -> Action:
    def send(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", "application/atom+xml")
        handler.send_header("Content-Length", str(len(body) if length is None else length))
        handler.end_headers()
        handler.wfile.write(body)

    return send


def drop(handler: BaseHTTPRequestHandler) -> None:
    handler.close_connection = True  # no status line at all


def stall(handler: BaseHTTPRequestHandler) -> None:
    time.sleep(TIMEOUT * 4)


def stall_mid_body(body: bytes) -> Action:
    def send(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body[: len(body) // 3])
        handler.wfile.flush()
        time.sleep(TIMEOUT * 4)

    return send


HTML = b"<html><head><title>Rate exceeded</title></head><body>Rate exceeded.</body></html>"
ERROR_FEED = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom" '
    b'xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/"><opensearch:totalResults>1'
    b"</opensearch:totalResults><entry><id>http://arxiv.org/api/errors#bad_query</id>"
    b"<title>Error</title><summary>malformed query</summary></entry></feed>"
)

# Each fault, made from the healthy page it replaces.
FAULTS: dict[str, Callable[[bytes], Action]] = {
    "http_500": lambda body: reply(500, b"internal error"),
    "http_503_html": lambda body: reply(503, HTML),
    "dropped_connection": lambda body: drop,
    "empty_page_total_zero": lambda body: reply(200, without_entries(body, total=0)),
    "empty_page_total_kept": lambda body: reply(200, without_entries(body)),
    "html_status_200": lambda body: reply(200, HTML),
    "empty_body_status_200": lambda body: reply(200, b""),
    "truncated_page": lambda body: reply(200, body[: len(body) // 2]),
    "short_read": lambda body: reply(200, body[: len(body) // 2], length=len(body)),
    "total_below_held": lambda body: reply(200, with_total(body, 1)),
    "start_index_elsewhere": lambda body: reply(200, with_start(body, 0)),
    "stall": lambda body: stall,
    "stall_mid_body": stall_mid_body,
}


@dataclass
class FaultServer:
    """Serves ``world[kind]`` page by page to the ``train`` and ``eval`` queries; the actions
    in ``faults[(kind, start)]`` answer first, one per request."""

    world: dict[str, list[bytes]] = field(default_factory=recorded_entries)
    faults: dict[tuple[str, int], list[Action]] = field(default_factory=dict)
    requests: list[tuple[str, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                args = parse_qs(urlparse(self.path).query, keep_blank_values=True)
                kind = "eval" if "TO 2999" in args["search_query"][0] else "train"
                start = int(args["start"][0])
                server.requests.append((kind, start))
                pending = server.faults.get((kind, start))
                if pending:
                    pending.pop(0)(self)
                else:
                    reply(200, server.page(kind, start))(self)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.block_on_close = False
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/api/query"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def page(self, kind: str, start: int) -> bytes:
        return page(self.world[kind], start)

    def expected(self) -> dict[str, set[str]]:
        """The ids of the complete corpus: every paper the server holds."""
        return {kind: paper_ids(entries) for kind, entries in self.world.items()}

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def asked(self, since: int = 0) -> list[tuple[str, int]]:
        return self.requests[since:]


@pytest.fixture
def server() -> Iterator[FaultServer]:
    replay = FaultServer()
    yield replay
    replay.close()


def build(server: FaultServer, out: Path, tokenizer: str, *extra: str) -> int:
    return main(
        [
            "--source",
            "api",
            "--api-url",
            server.url,
            "--api-delay",
            "0",
            "--api-backoff",
            "0",
            "--api-timeout",
            str(TIMEOUT),
            "--api-page-size",
            str(PAGE_SIZE),
            "--train-after",
            TRAIN_AFTER,
            "--train-before",
            SPLIT,
            "--after",
            SPLIT,
            "--tokenizer",
            tokenizer,
            "--lengths",
            "32",
            "--dev-size",
            "1",
            "--test-size",
            "1",
            "--out",
            str(out),
            *extra,
        ]
    )


def corpus_ids(out: Path) -> dict[str, set[str]]:
    def ids(*names: str) -> set[str]:
        return {row for name in names for row in pq.read_table(out / name)["id"].to_pylist()}

    return {"train": ids("train.parquet"), "eval": ids("dev.parquet", "test.parquet")}


def error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    return lines[0]


def query_of(kind: str) -> str:
    if kind == "train":
        return build_query(parse_cli_date(TRAIN_AFTER), parse_cli_date(SPLIT), ())
    return build_query(parse_cli_date(SPLIT), None, ())


def cached(server: FaultServer, cache: Path, kind: str, suffix: str) -> Path:
    """A cache file of the query: ``.partial.jsonl`` (in progress) or ``.json`` (state)."""
    settings = ApiSettings(cache_dir=cache, url=server.url, page_size=PAGE_SIZE)
    return cache_path(settings, query_of(kind)).with_suffix(suffix)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["train", "eval"])
@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_fault_fails_loudly_then_resumes(
    tmp_path: Path,
    tiny_tokenizer: str,
    server: FaultServer,
    capsys: pytest.CaptureFixture[str],
    fault: str,
    kind: str,
) -> None:
    out = tmp_path / "out"
    server.faults[(kind, 1)] = [FAULTS[fault](server.page(kind, 1))] * 2
    assert build(server, out, tiny_tokenizer, "--api-retries", "1") == 1
    line = error_line(capsys)
    assert f"query {query_of(kind)!r} failed at offset 1 after 2 attempts" in line
    assert (
        f"1 result cached in {cached(server, out / '.cache', kind, '.partial.jsonl')}: rerun"
        in line
    )
    assert not list(out.glob("*.parquet")), "no corpus from a failed download"
    asked = len(server.requests)
    assert build(server, out, tiny_tokenizer) == 0
    resumed = [start for query_kind, start in server.asked(asked) if query_kind == kind]
    assert resumed == list(range(1, len(server.world[kind]))), "resumed after the cache"
    assert corpus_ids(out) == server.expected()


@pytest.mark.parametrize("fault", ["html_status_200", "truncated_page", "stall"])
def test_single_fault_is_retried(
    tmp_path: Path, tiny_tokenizer: str, server: FaultServer, fault: str
) -> None:
    server.faults[("eval", 1)] = [FAULTS[fault](server.page("eval", 1))]
    assert build(server, tmp_path / "out", tiny_tokenizer, "--api-retries", "1") == 0
    assert corpus_ids(tmp_path / "out") == server.expected()
    assert [start for kind, start in server.requests if kind == "eval"] == [0, 1, 1]


def answer_nothing(server: FaultServer, kind: str, times: int) -> None:
    """The next ``times`` requests for the first page of ``kind`` report no results."""
    nothing = without_entries(server.page(kind, 0), total=0)
    server.faults[(kind, 0)] = [reply(200, nothing)] * times


@pytest.mark.parametrize("glitches", range(1, EMPTY_CONFIRMATIONS + 1))
def test_empty_first_page_is_confirmed(
    tmp_path: Path, tiny_tokenizer: str, server: FaultServer, glitches: int
) -> None:
    answer_nothing(server, "train", glitches)
    assert build(server, tmp_path / "out", tiny_tokenizer) == 0
    assert corpus_ids(tmp_path / "out") == server.expected()
    asked = [start for kind, start in server.requests if kind == "train"]
    assert asked == [0] * (glitches + 1) + list(range(1, len(server.world["train"])))


def test_an_empty_answer_is_asked_again_with_backoff_and_never_cached(
    tmp_path: Path, tiny_tokenizer: str, server: FaultServer, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    waits: list[float] = []
    monkeypatch.setattr("data_builders.arxiv.api.time.sleep", waits.append)
    asked = 1 + EMPTY_CONFIRMATIONS
    answer_nothing(server, "eval", asked)
    out = tmp_path / "out"
    assert build(server, out, tiny_tokenizer, "--api-backoff", "2") == 2
    assert waits == [2 * 2**k for k in range(EMPTY_CONFIRMATIONS)], "backoff, doubled"
    assert [start for kind, start in server.requests if kind == "eval"] == [0] * asked
    assert error_line(capsys) == (
        f"error: no papers submitted on/after {parse_cli_date(SPLIT)} in the input: nothing to "
        f"put in dev/test; the arXiv API answered 0 results for {query_of('eval')!r} on {asked} "
        "requests; that answer is not cached: rerun to ask again (later, if the window should "
        "hold papers)"
    )
    assert not cached(server, out / ".cache", "eval", ".json").exists()
    before = len(server.requests)
    assert build(server, out, tiny_tokenizer) == 0, "the rerun asks again"
    assert [start for kind, start in server.asked(before) if kind == "eval"] == list(
        range(len(server.world["eval"])))
    assert corpus_ids(out) == server.expected()


def test_an_empty_answer_cached_as_complete_is_not_reused(
    tmp_path: Path, tiny_tokenizer: str, server: FaultServer
) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    results = cached(server, cache, "train", ".jsonl")
    results.write_bytes(b"")
    state = {"query": query_of("train"), "url": server.url, "page_size": PAGE_SIZE,
             "results": 0, "sha256": hashlib.sha256(b"").hexdigest(),
             "fetched_at": datetime.now(UTC).isoformat(timespec="seconds"),
             "open_window": False}
    cached(server, cache, "train", ".json").write_text(json.dumps(state))
    assert build(server, tmp_path / "out", tiny_tokenizer, "--cache-dir", str(cache)) == 0
    assert ("train", 0) in server.requests
    assert corpus_ids(tmp_path / "out") == server.expected()


def test_a_refresh_that_answers_nothing_keeps_the_earlier_copy(
    tmp_path: Path, tiny_tokenizer: str, server: FaultServer, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = ["--cache-dir", str(tmp_path / "cache")]
    assert build(server, tmp_path / "first", tiny_tokenizer, *cache) == 0
    state_path = cached(server, tmp_path / "cache", "eval", ".json")
    state = json.loads(state_path.read_text())
    fetched = datetime.fromisoformat(state["fetched_at"]) - timedelta(hours=25)
    state["fetched_at"] = fetched.isoformat()
    state_path.write_text(json.dumps(state))
    answer_nothing(server, "eval", 1 + EMPTY_CONFIRMATIONS)
    assert build(server, tmp_path / "second", tiny_tokenizer, *cache) == 1
    assert error_line(capsys) == (
        f"error: arXiv API query {query_of('eval')!r} answered 0 results on "
        f"{1 + EMPTY_CONFIRMATIONS} requests, although {state['results']} were fetched at "
        f"{state['fetched_at']}; that copy is kept: rerun later, or pass --api-refresh-after inf "
        "to build from it"
    )
    assert json.loads(state_path.read_text()) == state
    assert build(server, tmp_path / "third", tiny_tokenizer, *cache) == 0
    assert corpus_ids(tmp_path / "third") == server.expected()


def test_rejected_query_is_bad_input(
    tmp_path: Path, tiny_tokenizer: str, server: FaultServer, capsys: pytest.CaptureFixture[str]
) -> None:
    server.faults[("train", 0)] = [reply(400, ERROR_FEED)]
    assert build(server, tmp_path / "out", tiny_tokenizer) == 2
    assert "the API rejected the query: malformed query" in error_line(capsys)
    assert server.requests == [("train", 0)], "a rejected query is not retried"


def test_interrupted_line_and_reordered_results(
    tmp_path: Path, tiny_tokenizer: str, server: FaultServer, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    server.faults[("train", 2)] = [drop]
    assert build(server, out, tiny_tokenizer, "--api-retries", "0") == 1
    assert "failed at offset 2 after 1 attempt (" in error_line(capsys)
    partial = cached(server, out / ".cache", "train", ".partial.jsonl")
    held = partial.read_text().splitlines()
    partial.write_text(held[0] + "\n" + held[1][:10])  # killed while writing the second line
    shifted = with_start(server.page("train", 0), 1)
    server.faults[("train", 1)] = [reply(200, shifted)]
    asked = len(server.requests)
    assert build(server, out, tiny_tokenizer) == 1, "results that shifted are not mixed"
    assert server.asked(asked) == [("train", 1)]
    line = error_line(capsys)
    assert "the order of the results changed" in line and f"delete {partial}" in line
    partial.unlink()
    assert build(server, out, tiny_tokenizer) == 0
    assert corpus_ids(out) == server.expected()


def test_open_window_is_refreshed(tmp_path: Path, tiny_tokenizer: str, server: FaultServer) -> None:
    """A query without an end date is fetched again once its copy is older than
    --api-refresh-after (default); a closed window is not."""
    complete = server.world["eval"]
    server.world["eval"] = complete[:1]  # later papers are not announced yet
    cache = ["--cache-dir", str(tmp_path / "cache")]
    assert build(server, tmp_path / "first", tiny_tokenizer, *cache) == 0
    assert corpus_ids(tmp_path / "first") == server.expected()
    server.world["eval"] = complete
    asked = len(server.requests)
    assert build(server, tmp_path / "same", tiny_tokenizer, *cache) == 0
    assert server.asked(asked) == [], "a fresh copy is reused"
    assert corpus_ids(tmp_path / "same") == corpus_ids(tmp_path / "first")
    state_path = cached(server, tmp_path / "cache", "eval", ".json")
    state = json.loads(state_path.read_text())
    assert state["open_window"] is True and state["results"] == 1
    fetched = datetime.fromisoformat(state["fetched_at"])
    state["fetched_at"] = (fetched - timedelta(hours=25)).isoformat()
    state_path.write_text(json.dumps(state))
    assert build(server, tmp_path / "new", tiny_tokenizer, *cache) == 0
    assert server.asked(asked) == [("eval", start) for start in range(len(complete))]
    assert corpus_ids(tmp_path / "new") == server.expected()


def test_help_documents_timeout_and_refresh() -> None:
    text = " ".join(make_parser().format_help().split())
    assert "--api-timeout API_TIMEOUT seconds" in text
    assert f"(default {ApiSettings.timeout_seconds:g})" in text
    assert f"inf: never (default {ApiSettings.refresh_after_hours:g})" in text
