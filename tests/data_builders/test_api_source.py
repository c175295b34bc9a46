"""The arXiv API source against a local server replaying recorded and hand-written Atom XML."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pyarrow.parquet as pq
import pytest

from data_builders.arxiv.cli import main
from tests.data_builders.conftest import FIXTURES, SHARED

Route = Callable[[str, int], tuple[int, bytes]]
RECORDED = SHARED / "data" / "arxiv" / "api_atom"


class AtomServer:
    """Serves ``route(search_query, start)``; records every (query, start) it was asked."""

    def __init__(self, route: Route) -> None:
        self.route = route
        self.requests: list[tuple[str, int]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                args = parse_qs(urlparse(self.path).query, keep_blank_values=True)
                query, start = args["search_query"][0], int(args["start"][0])
                server.requests.append((query, start))
                status, body = server.route(query, start)
                self.send_response(status)
                self.send_header("Content-Type", "application/atom+xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/api/query"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> AtomServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _recorded(name: str) -> bytes:
    path = RECORDED / name
    if not path.exists():
        pytest.skip(f"{path} not available (../shared is absent)")
    return path.read_bytes()


def _eval_page(start: int) -> tuple[int, bytes]:
    return 200, (FIXTURES / "api_atom" / f"eval_start{start}.xml").read_bytes()


def _run(server: AtomServer, out: Path, tokenizer: str, *extra: str) -> int:
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
            "--api-page-size",
            "2",
            "--after",
            "2024-01",
            "--train-after",
            "2010-01",
            "--tokenizer",
            tokenizer,
            "--lengths",
            "32",
            "--dev-size",
            "1",
            "--test-size",
            "3",
            "--out",
            str(out),
            *extra,
        ]
    )


@pytest.fixture
def train_feed() -> Iterator[bytes]:
    yield _recorded("id_1707.08567_s0_m100_6a1afebfc6a3.xml")


def test_api_build_pages_filters_and_caches(
    tmp_path: Path, tiny_tokenizer: str, train_feed: bytes
) -> None:
    def route(query: str, start: int) -> tuple[int, bytes]:
        return (200, train_feed) if "TO 20230630" in query else _eval_page(start)

    out = tmp_path / "out"
    with AtomServer(route) as server:
        assert _run(server, out, tiny_tokenizer, "--categories", "cs.CL,cs.IT") == 0
        eval_starts = [start for query, start in server.requests if "TO 2999" in query]
        assert eval_starts == [0, 2, 4]
        assert all("cat:cs.CL OR cat:cs.IT" in query for query, _ in server.requests)
        count = len(server.requests)
        assert (
            _run(
                server,
                tmp_path / "again",
                tiny_tokenizer,
                "--cache-dir",
                str(out / ".cache"),
                "--categories",
                "cs.CL,cs.IT",
            )
            == 0
        )
        assert len(server.requests) == count, "a finished query is never fetched again"
    rows = (
        pq.read_table(out / "test.parquet").to_pylist()
        + pq.read_table(out / "dev.parquet").to_pylist()
    )
    assert {r["id"] for r in rows} == {"2401.00001", "2401.00002", "2402.00003", "2403.00004"}
    assert all("\n" not in r["text"] and "  " not in r["text"] for r in rows)
    (train,) = pq.read_table(out / "train.parquet").to_pylist()
    assert (train["id"], train["published"]) == ("1707.08567", "2017-07-27")
    manifest = json.loads((out / "manifest.json").read_text())
    assert [item["query"].split(" AND ")[0] for item in manifest["inputs"]] == [
        "submittedDate:[201001010000 TO 202306302359]",
        "submittedDate:[202401010000 TO 299912312359]",
    ]


@pytest.mark.parametrize(
    "name",
    [
        "id_list_1111.2011v2.xml",
        "search_query_au_del_maestro.xml",
        "id_2104.12255v1_s0_m100_6ae69987ffe1.xml",
    ],
)
def test_recorded_feeds_parse_as_train(tmp_path: Path, tiny_tokenizer: str, name: str) -> None:
    feed = _recorded(name)
    entries = feed.count(b"<entry>")

    def route(query: str, start: int) -> tuple[int, bytes]:
        if "TO 20230630" in query:
            return (
                (200, feed)
                if start == 0
                else (200, _recorded("id_0000.0000_s0_m100_8b51d9633a68.xml"))
            )
        return _eval_page(start)

    with AtomServer(route) as server:
        code = _run(
            server, tmp_path / "out", tiny_tokenizer, "--api-page-size", "10", "--api-retries", "0"
        )
    if name.startswith("search_query"):  # claims 31 results, then an empty page: an error
        assert code == 1
        cached = list((tmp_path / "out" / ".cache").glob("api-*.jsonl"))
        assert sum(len(p.read_text().splitlines()) for p in cached) == entries
        return
    assert code == 0
    assert pq.read_table(tmp_path / "out" / "train.parquet").num_rows == entries


def test_empty_results(
    tmp_path: Path, tiny_tokenizer: str, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = _recorded("id_0000.0000_s0_m100_8b51d9633a68.xml")

    def empty_train(query: str, start: int) -> tuple[int, bytes]:
        return (200, empty) if "TO 20230630" in query else _eval_page(start)

    with AtomServer(empty_train) as server:
        assert _run(server, tmp_path / "a", tiny_tokenizer) == 0
    assert pq.read_table(tmp_path / "a" / "train.parquet").num_rows == 0
    with AtomServer(lambda query, start: (200, empty)) as server:
        assert _run(server, tmp_path / "b", tiny_tokenizer) == 2
    assert "no papers submitted on/after 2024-01-01" in capsys.readouterr().err


def test_server_errors_retry_then_resume(
    tmp_path: Path, tiny_tokenizer: str, train_feed: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = {"page2": 2}

    def route(query: str, start: int) -> tuple[int, bytes]:
        if "TO 20230630" in query:
            return 200, train_feed
        if start == 2 and broken["page2"] > 0:
            broken["page2"] -= 1
            return 500, b"internal error"
        return _eval_page(start)

    out = tmp_path / "out"
    with AtomServer(route) as server:
        assert _run(server, out, tiny_tokenizer, "--api-retries", "1") == 1
        assert "rerun to resume" in capsys.readouterr().err
        before = len(server.requests)
        assert _run(server, out, tiny_tokenizer, "--api-retries", "1") == 0
        resumed = [start for query, start in server.requests[before:] if "TO 2999" in query]
    assert resumed == [2, 4], "the resumed fetch starts after the cached first page"
    assert pq.read_table(out / "test.parquet").num_rows == 3
