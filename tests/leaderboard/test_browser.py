"""The built page in a real headless browser (Debian's ``chromium``).

The page runs its own self-test when opened with ``#selftest``: it clicks every header of the
first table twice, renders every logged sample (the one with ``<script>`` and ``<img onerror>``
last) and writes a JSON report into ``<pre id="selftest">``, which ``--dump-dom`` returns.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from leaderboard._cli import main
from tests.leaderboard.conftest import FIXTURE_RUNS, fixture_sample_count

CHROMIUM = next((p for name in ("chromium", "chromium-browser") if (p := shutil.which(name))), None)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium binary (Debian: apt-get install -y chromium)"
)


def _open(page: Path, profile: Path) -> tuple[dict[str, Any], str, str]:
    assert CHROMIUM is not None
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        f"--user-data-dir={profile}",
        "--enable-logging=stderr",
        "--v=0",
        "--virtual-time-budget=5000",
        "--dump-dom",
        page.as_uri() + "#selftest",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    match = re.search(r'<pre id="selftest"[^>]*data-done="1"[^>]*>(.*?)</pre>', done.stdout, re.S)
    assert match, f"self-test did not finish: {done.stdout[-2000:]} {done.stderr[-2000:]}"
    return json.loads(html.unescape(match.group(1))), done.stdout, done.stderr


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    assert main(["build", str(FIXTURE_RUNS), "--out", str(out)]) == 0
    return out / "index.html"


@pytest.fixture(scope="module")
def opened(page: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str, str]:
    return _open(page, tmp_path_factory.mktemp("profile"))


def test_no_console_errors(opened: tuple[dict[str, Any], str, str]) -> None:
    report, _dom, stderr = opened
    assert report["errors"] == []
    console = [line for line in stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]
    assert console == []


def test_clicking_a_header_sorts_the_rows(opened: tuple[dict[str, Any], str, str]) -> None:
    report, _dom, _err = opened
    columns = {c["title"]: c["clicks"] for c in report["columns"]}
    assert len(columns) == 18  # Model, Compressor, 5 x (F1, EM), Avg F1/EM, 2 x (Rouge, BLEU)
    for title, (first, second) in columns.items():
        assert first["direction"] == "ascending" and second["direction"] == "descending"
        if title in ("Model", "Compressor"):
            continue
        assert first["values"] == sorted(first["values"]), title
        assert second["values"] == sorted(second["values"], reverse=True), title
    compressor = columns["Compressor"]
    assert compressor[1]["order"] == list(reversed(compressor[0]["order"]))
    reordered = [t for t, (first, _s) in columns.items() if first["order"] != report["initial"]]
    assert "Rouge-L-F 96" in reordered  # the fixture rows are not already in score order


def test_hostile_context_renders_as_text(opened: tuple[dict[str, Any], str, str]) -> None:
    report, dom, _err = opened
    assert report["hostile"] >= 1 and report["rendered"] == fixture_sample_count()
    assert report["title"] == report["title_before"] == "compressbench leaderboard"
    assert report["pwned"] is None and "data-pwned" not in dom.split("<body", 1)[1].split(">", 1)[0]
    assert "<script>document.title='pwned'" in report["context_text"]
    assert "onerror=" in report["context_text"] and report["context_children"] == 0
    assert "&lt;img src=x onerror=" in dom


def test_the_probe_detects_an_unsafe_viewer(page: Path, tmp_path: Path) -> None:
    # Control: the same page rendering samples with innerHTML must be caught by the report.
    text = page.read_text(encoding="utf-8")
    unsafe = text.replace(
        "document.getElementById(id).textContent = ", "document.getElementById(id).innerHTML = "
    )
    assert unsafe != text
    control = tmp_path / "unsafe.html"
    control.write_text(unsafe, encoding="utf-8")
    report, _dom, _err = _open(control, tmp_path / "profile")
    assert report["pwned"] == "img" and report["context_children"] > 0
