"""Loads from the Hugging Face hub end in one line naming the flag that takes a local path."""

from __future__ import annotations

import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from bench.demo import bundled_path
from bench.hub import HubLoadError, load_from_hub
from bench.substrate.errors import InputError

REPO = Path(__file__).resolve().parents[2]
HUB_ID = "compressbench-test/no-such-model"


class _Hub(http.server.BaseHTTPRequestHandler):
    """Answers every request with the status and error code the test chose."""

    status = 200
    error_code = ""
    requests: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        type(self).requests.append(self.path)
        body = json.dumps({"id": HUB_ID, "sha": "0" * 40, "siblings": []}).encode()
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        if self.error_code:
            self.send_header("X-Error-Code", self.error_code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture()
def hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[type[_Hub]]:
    """A loopback stand-in for the hub, an empty hub cache, and the hub switched on."""
    import huggingface_hub.constants as constants

    handler = type("Hub", (_Hub,), {"requests": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{server.server_port}")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    yield handler
    server.shutdown()
    server.server_close()


def _asked_for(hub: type[_Hub]) -> list[str]:
    """The requests that named the repository (the client may send others of its own)."""
    return [path for path in hub.requests if HUB_ID in path]


def _failing_load() -> object:
    raise OSError("the hub client's long message\nover several lines")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_a_local_folder_is_loaded_without_asking_the_hub(tmp_path: Path, hub: type[_Hub]):
    assert load_from_hub(lambda: "loaded", str(tmp_path), "tokenizer", "--tokenizer") == "loaded"
    assert _asked_for(hub) == []


def test_a_missing_local_path_names_the_flag(tmp_path: Path, hub: type[_Hub]):
    missing = tmp_path / "no-model"
    with pytest.raises(InputError) as caught:
        load_from_hub(_failing_load, str(missing), "target model", "pretrained=")
    assert str(caught.value).startswith(f"{missing}: field 'pretrained=': no such file")
    assert not isinstance(caught.value, HubLoadError) and _asked_for(hub) == []


def test_a_local_folder_the_loader_refuses_is_bad_input_naming_it(tmp_path: Path):
    from transformers import AutoConfig

    (tmp_path / "config.json").write_text('{"model_type": "no-such-type"}', encoding="utf-8")
    with pytest.raises(InputError) as caught:
        load_from_hub(lambda: AutoConfig.from_pretrained(str(tmp_path)), str(tmp_path),
                      "base model", "--base")
    assert str(caught.value).startswith(f"{tmp_path}: field '--base': cannot load the base "
                                        "model: The checkpoint you are trying to load has "
                                        "model type `no-such-type`")


def test_offline_and_not_cached_is_one_line_without_a_request(
        hub: type[_Hub], monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(HubLoadError) as caught:
        load_from_hub(_failing_load, HUB_ID, "tokenizer", "--tokenizer")
    message = str(caught.value)
    assert message == (f"could not load tokenizer {HUB_ID!r} from the Hugging Face hub: offline "
                       "(HF_HUB_OFFLINE is set) and not in the local cache; pass a local path "
                       "with --tokenizer")
    assert _asked_for(hub) == []


@pytest.mark.parametrize(("status", "code", "reason"), [
    (404, "RepoNotFound", "no model of that name on the hub"),
    (401, "GatedRepo", "it is gated"),
])
def test_a_name_the_hub_refuses_is_one_line_and_nothing_is_loaded(
        hub: type[_Hub], status: int, code: str, reason: str):
    hub.status, hub.error_code = status, code
    with pytest.raises(HubLoadError) as caught:
        load_from_hub(_failing_load, HUB_ID, "compressor model", "compressor_model=")
    assert reason in str(caught.value) and "\n" not in str(caught.value)
    assert str(caught.value).endswith("; pass a local path with compressor_model=")
    assert len(_asked_for(hub)) == 1


def test_an_unreachable_hub_is_one_request_and_one_line(monkeypatch: pytest.MonkeyPatch,
                                                        hub: type[_Hub]):
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    started = time.perf_counter()
    with pytest.raises(HubLoadError, match=r"offline\? the hub did not answer"):
        load_from_hub(_failing_load, HUB_ID, "tokenizer", "--tokenizer")
    assert time.perf_counter() - started < 5  # no retries with back-off


def test_a_name_the_hub_knows_is_loaded_and_a_failed_download_is_one_line(hub: type[_Hub]):
    assert load_from_hub(lambda: "loaded", HUB_ID, "tokenizer", "--tokenizer") == "loaded"
    with pytest.raises(HubLoadError) as caught:
        load_from_hub(_failing_load, HUB_ID, "tokenizer", "--tokenizer")
    assert "the hub client's long message; pass a local path" in str(caught.value)


def test_a_cached_name_is_loaded_without_a_request(hub: type[_Hub], tmp_path: Path):
    import huggingface_hub.constants as constants

    revision = "1" * 40
    repo = Path(constants.HF_HUB_CACHE) / f"models--{HUB_ID.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision, encoding="utf-8")
    (repo / "snapshots" / revision).mkdir(parents=True)
    (repo / "snapshots" / revision / "config.json").write_text("{}", encoding="utf-8")
    assert load_from_hub(lambda: "cached", HUB_ID, "tokenizer", "--tokenizer") == "cached"
    assert _asked_for(hub) == []


def test_bench_prepare_with_an_unreachable_hub_exits_2_with_one_line(tmp_path: Path):
    env = {k: v for k, v in os.environ.items()
           if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "COMPRESSBENCH_DEBUG")}
    env.update(HF_HOME=str(tmp_path / "hf"), HF_ENDPOINT=f"http://127.0.0.1:{_closed_port()}")
    command = [sys.executable, "-m", "bench.prepare", "squad", "--source",
               str(bundled_path("demo_qa.jsonl")), "--subset", "squad", "--tokenizer", HUB_ID,
               "--out", str(tmp_path / "data"), "--quiet"]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.startswith(f"error: could not load tokenizer {HUB_ID!r} from the "
                                  "Hugging Face hub: offline? the hub did not answer")
    assert done.stderr.endswith("; pass a local path with --tokenizer\n")
    assert done.stderr.count("\n") == 1 and "Retrying" not in done.stderr
    assert time.perf_counter() - started < 60
