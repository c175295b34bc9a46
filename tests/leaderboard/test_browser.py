"""The built page in a real headless browser (Debian's ``chromium``).

The page runs its own self-test when opened with ``#selftest``: it clicks every header of the
first table twice, renders every logged sample (the one with ``<script>`` and ``<img onerror>``
last), measures every plot against its box and writes a JSON report into
``<pre id="selftest">``, which ``--dump-dom`` returns. Screenshots of the page at a wide and a
narrow window are saved in the test's temporary folder (``page-<width>.png``).
"""

from __future__ import annotations

import base64
import html
import io
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageChops

from leaderboard._cli import main
from tests.leaderboard.conftest import FIXTURE_RUNS, fixture_sample_count

CHROMIUM = next((p for name in ("chromium", "chromium-browser") if (p := shutil.which(name))), None)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium binary (Debian: apt-get install -y chromium)"
)
WIDE, NARROW, HEIGHT = 1280, 700, 900
SCREENSHOT_HEIGHT = 4000


def _chromium(page: Path, profile: Path, width: int, height: int, *action: str) -> str:
    assert CHROMIUM is not None
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--hide-scrollbars",
        "--force-device-scale-factor=1",
        f"--user-data-dir={profile}",
        f"--window-size={width},{height}",
        "--enable-logging=stderr",
        "--v=0",
        "--virtual-time-budget=5000",
        *action,
        page.as_uri() + "#selftest",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout + "\0" + done.stderr


def _open(page: Path, profile: Path, width: int = WIDE) -> tuple[dict[str, Any], str, str]:
    dom, stderr = _chromium(page, profile, width, HEIGHT, "--dump-dom").split("\0", 1)
    match = re.search(r'<pre id="selftest"[^>]*data-done="1"[^>]*>(.*?)</pre>', dom, re.S)
    assert match, f"self-test did not finish: {dom[-2000:]} {stderr[-2000:]}"
    return json.loads(html.unescape(match.group(1))), dom, stderr


def _screenshot(page: Path, folder: Path, width: int) -> Image.Image:
    path = folder / f"page-{width}.png"
    _chromium(page, folder / f"profile-{width}", width, SCREENSHOT_HEIGHT, f"--screenshot={path}")
    return Image.open(path).convert("RGB")


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    assert main(["build", str(FIXTURE_RUNS), "--out", str(out)]) == 0
    return out / "index.html"


@pytest.fixture(scope="module")
def opened(page: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str, str]:
    return _open(page, tmp_path_factory.mktemp("profile"))


def _plot_images(page: Path) -> dict[str, Image.Image]:
    text = page.read_text(encoding="utf-8")
    found = re.findall(r'id="plot-([a-z_]+)"[^>]*src="data:image/png;base64,([^"]+)"', text)
    return {f"plot-{name}": Image.open(io.BytesIO(base64.b64decode(data))) for name, data in found}


def test_no_console_errors(opened: tuple[dict[str, Any], str, str]) -> None:
    report, _dom, stderr = opened
    assert report["errors"] == []
    console = [line for line in stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]
    assert console == []


def test_clicking_a_header_sorts_the_rows(
    opened: tuple[dict[str, Any], str, str], page: Path
) -> None:
    report, _dom, _err = opened
    columns = {c["title"]: c["clicks"] for c in report["columns"]}
    board = json.loads((page.parent / "leaderboard.json").read_text(encoding="utf-8"))
    assert list(columns) == board["tables"][0]["columns"]
    for title, (first, second) in columns.items():
        assert first["direction"] == "ascending" and second["direction"] == "descending"
        if any(isinstance(v, str) and v for v in first["values"]):
            continue  # a text column (labels, notes)
        numbers = [v for v in first["values"] if v != ""]
        assert first["values"] == sorted(numbers) + [""] * (len(first["values"]) - len(numbers))
        assert second["values"][: len(numbers)] == sorted(numbers, reverse=True), title
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


def test_plots_render_at_natural_size_inside_their_boxes(
    opened: tuple[dict[str, Any], str, str], page: Path
) -> None:
    report, _dom, _err = opened
    images = _plot_images(page)
    assert [plot["id"] for plot in report["plots"]] == list(images) and images
    for plot in report["plots"]:
        natural = images[plot["id"]].size
        assert plot["complete"] and (plot["natural_width"], plot["natural_height"]) == natural
        assert (plot["width"], plot["height"]) == natural, plot  # not scaled down at 1280 px
        assert plot["box_left"] <= plot["left"] and plot["right"] <= plot["box_right"], plot
    assert report["page_width"] <= report["viewport_width"]  # wide tables scroll in a box


def test_narrow_window_scales_plots_and_never_overflows(page: Path, tmp_path: Path) -> None:
    report, _dom, _err = _open(page, tmp_path / "profile", width=NARROW)
    assert report["page_width"] <= report["viewport_width"] <= NARROW
    for plot in report["plots"]:
        assert plot["right"] <= plot["box_right"] and plot["width"] < plot["natural_width"]
        assert plot["height"] / plot["width"] == pytest.approx(
            plot["natural_height"] / plot["natural_width"], rel=0.02
        )


def test_screenshot_shows_the_plots(
    opened: tuple[dict[str, Any], str, str], page: Path, tmp_path: Path
) -> None:
    report, _dom, _err = opened
    shot = _screenshot(page, tmp_path, WIDE)
    assert shot.size == (WIDE, SCREENSHOT_HEIGHT)
    narrow = _screenshot(page, tmp_path, NARROW)
    assert narrow.size == (NARROW, SCREENSHOT_HEIGHT)
    for plot in report["plots"]:
        image = _plot_images(page)[plot["id"]].convert("RGB")
        left, top = round(plot["left"]), round(plot["top"])
        assert top + image.height <= SCREENSHOT_HEIGHT, "plot below the screenshot"
        shown = shot.crop((left, top, left + image.width, top + image.height))
        histogram = ImageChops.difference(shown, image).convert("L").histogram()
        differing = sum(histogram[16:])  # pixels off by more than colour management does
        assert differing <= image.width * image.height // 100, (plot["id"], differing)
