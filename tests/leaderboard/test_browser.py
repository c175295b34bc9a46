"""The built page in a real headless browser (Debian's ``chromium``), at 1400 and 420 px.

The page runs its own self-test when opened with ``#selftest``: it measures the first screen
(the plot and the summary's scores in view, the page's width), scrolls every table in its
box, shows every plot, clicks every filter and the axis switch (noting after each the rows,
columns, plots and, per plot and legend, the series drawn), clicks every header of every
table twice, renders every logged sample (the one with ``<script>`` and ``<img onerror>``
last) and writes a JSON report into ``<pre id="selftest">``, which ``--dump-dom`` returns.

Screenshots of the first screen at both widths (``first-screen-<width>.png``) are kept as test
artefacts: in ``$COMPRESSBENCH_SCREENSHOTS`` when set, else in pytest's temporary folder; the
test run prints where.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from leaderboard._cli import main
from tests.leaderboard._page_runs import MODEL, write_page_runs
from tests.leaderboard.conftest import FIXTURE_RUNS, fixture_sample_count

CHROMIUM = next((p for name in ("chromium", "chromium-browser") if (p := shutil.which(name))), None)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium binary (Debian: apt-get install -y chromium)"
)
WIDE, NARROW, HEIGHT = 1400, 420, 900
WIDTHS = (WIDE, NARROW)
MIN_LEGEND_PX = 11.0
SCORE_COLUMNS = ("retention %", "QA F1", "Rouge-L-F")
Report = dict[str, Any]


# A frame of exactly the width and height under test: headless Chromium's window is at least
# 500 px wide and its viewport is shorter than the window, so the page is opened in a frame.
FRAME = """<!DOCTYPE html>
<html><head><meta charset="utf-8">
<style>body {{ margin: 0; }} iframe {{ border: 0; display: block; }}</style></head>
<body><iframe id="page" src="{src}" width="{width}" height="{height}"></iframe>
<pre id="report"></pre>
<script>
var timer = setInterval(function () {{
  var out = document.getElementById("page").contentDocument.getElementById("selftest");
  if (out && out.getAttribute("data-done")) {{
    var report = document.getElementById("report");
    report.textContent = out.textContent;
    report.setAttribute("data-done", "1");
    clearInterval(timer);
  }}
}}, 50);
</script></body></html>
"""


def _framed(page: Path, width: int, selftest: bool) -> Path:
    src = page.name + ("#selftest" if selftest else "")
    frame = page.with_name(f"frame-{page.stem}-{width}-{int(selftest)}.html")
    frame.write_text(FRAME.format(src=src, width=width, height=HEIGHT), encoding="utf-8")
    return frame


def _chromium(page: Path, profile: Path, width: int, *action: str, selftest: bool = True) -> str:
    assert CHROMIUM is not None
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--hide-scrollbars",
        "--allow-file-access-from-files",
        "--force-device-scale-factor=1",
        f"--user-data-dir={profile}",
        f"--window-size={max(width, 500) + 100},{HEIGHT + 300}",
        "--enable-logging=stderr",
        "--v=0",
        "--virtual-time-budget=5000",
        *action,
        _framed(page, width, selftest).as_uri(),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout + "\0" + done.stderr


def _open(page: Path, profile: Path, width: int) -> tuple[Report, str, str]:
    dom, stderr = _chromium(page, profile, width, "--dump-dom").split("\0", 1)
    match = re.search(r'<pre id="report"[^>]*data-done="1"[^>]*>(.*?)</pre>', dom, re.S)
    assert match, f"self-test did not finish: {dom[-2000:]} {stderr[-2000:]}"
    return json.loads(html.unescape(match.group(1))), dom, stderr


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The page of the committed runs and of a second model with every family, sizes in bits
    and a smoke-test row."""
    more = write_page_runs(tmp_path_factory.mktemp("runs"))
    out = tmp_path_factory.mktemp("site")
    assert main(["build", str(FIXTURE_RUNS), str(more), "--out", str(out)]) == 0
    return out / "index.html"


@pytest.fixture(scope="module")
def opened(page: Path, tmp_path_factory: pytest.TempPathFactory
           ) -> dict[int, tuple[Report, str, str]]:
    return {width: _open(page, tmp_path_factory.mktemp(f"profile-{width}"), width)
            for width in WIDTHS}


@pytest.fixture(scope="module")
def screenshots(page: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    """The first screen at each width, as a reader opens the page (no self-test)."""
    chosen = os.environ.get("COMPRESSBENCH_SCREENSHOTS")
    folder = Path(chosen) if chosen else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    shots = {}
    for width in WIDTHS:
        shots[width] = folder / f"first-screen-{width}.png"
        _chromium(page, tmp_path_factory.mktemp(f"shot-{width}"), width,
                  f"--screenshot={shots[width]}", selftest=False)
        Image.open(shots[width]).crop((0, 0, width, HEIGHT)).save(shots[width])
    print(f"\nscreenshots of the first screen: {', '.join(map(str, shots.values()))}")
    return shots


def _charts(page: Path) -> dict[str, ET.Element]:
    """The page's ``<svg>`` plots by id, parsed."""
    found = re.findall(r'<svg .*?</svg>', page.read_text(encoding="utf-8"), re.S)
    return {chart.attrib["id"]: chart for chart in map(ET.fromstring, found)}


def _owners(page: Path) -> dict[str, dict[str, str]]:
    """Per filter token, the family and model the page's filters read."""
    data = re.search(r'<script type="application/json" id="series-data">(.*?)</script>',
                     page.read_text(encoding="utf-8"), re.S)
    assert data is not None
    owners: dict[str, dict[str, str]] = json.loads(data.group(1))
    return owners


def _inside(box: dict[str, float], width: float, height: float) -> bool:
    return (box["left"] >= 0 and box["top"] >= 0 and box["right"] <= width
            and box["bottom"] <= height and box["width"] > 0)


@pytest.mark.parametrize("width", WIDTHS)
def test_no_console_errors(opened: dict[int, tuple[Report, str, str]], width: int) -> None:
    report, _dom, stderr = opened[width]
    assert report["errors"] == []
    console = [line for line in stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]
    assert console == []


@pytest.mark.parametrize("width", WIDTHS)
def test_the_first_screen_shows_a_plot_and_the_summary_scores(
        opened: dict[int, tuple[Report, str, str]], width: int) -> None:
    screen = opened[width][0]["first_screen"]
    assert (screen["inner_width"], screen["inner_height"]) == (width, HEIGHT)
    (plot,) = screen["plots"]
    assert plot["id"] == "plot-rate-qa" and _inside(plot["box"], width, HEIGHT), plot
    shown = [cell for cell in screen["score_cells"] if cell["column"] in SCORE_COLUMNS
             and _inside(cell["box"], width, HEIGHT)]
    assert len(shown) >= 2, screen["score_cells"]


@pytest.mark.parametrize("width", WIDTHS)
def test_the_page_never_scrolls_sideways(opened: dict[int, tuple[Report, str, str]],
                                         width: int) -> None:
    report = opened[width][0]
    assert report["first_screen"]["scroll_width"] <= width
    assert report["page_width"] <= report["viewport_width"] <= width  # after every control


@pytest.mark.parametrize("width", WIDTHS)
def test_plots_are_unscaled_and_legends_readable(
        opened: dict[int, tuple[Report, str, str]], page: Path, width: int) -> None:
    report = opened[width][0]
    charts = _charts(page)
    legends = {"legend-rate", "legend-bits", "legend-score_vs_length"}
    assert sorted(plot["id"] for plot in report["plots"]) == sorted([*charts, *legends])
    for plot in report["plots"]:
        assert plot["box_left"] <= plot["left"] and plot["right"] <= plot["box_right"], plot
        assert plot["text_px"] >= MIN_LEGEND_PX, plot  # after any scaling
        if plot["id"] in legends:
            continue
        natural = (float(charts[plot["id"]].attrib["width"]),
                   float(charts[plot["id"]].attrib["height"]))
        assert (plot["natural_width"], plot["natural_height"]) == natural
        scale = plot["width"] / plot["natural_width"]
        assert scale == 1.0, plot  # a panel narrower than a 420 px window: never scaled


@pytest.mark.parametrize("width", WIDTHS)
def test_tables_scroll_in_their_box_with_the_method_fixed(
        opened: dict[int, tuple[Report, str, str]], width: int) -> None:
    sticky = {item["id"]: item for item in opened[width][0]["sticky"]}
    assert sticky["table-raw"]["overflow"] > 0  # the raw table is wider than either window
    for item in sticky.values():
        if item["overflow"] <= 0:
            continue
        assert item["scrolled"] > 0
        assert item["fixed"][1] == pytest.approx(item["fixed"][0], abs=1), item
        assert item["last"][0] - item["last"][1] == pytest.approx(item["scrolled"], abs=1)


def _columns_by_benchmark(page: Path) -> dict[str, set[str]]:
    head = page.read_text(encoding="utf-8").split('id="table-raw"', 1)[1].split("</thead>")[0]
    found: dict[str, set[str]] = {}
    for bench, title in re.findall(r'<th scope="col"[^>]*?(?: data-bench="([^"]*)")?>([^<]*)</th>',
                                   head):
        found.setdefault(bench, set()).add(html.unescape(title))
    return found


def test_filters_hide_rows_and_columns(opened: dict[int, tuple[Report, str, str]],
                                       page: Path) -> None:
    filters = opened[WIDE][0]["filters"]
    everything = filters["model"][""]["tables"]
    families = {family for rows in (t["rows"] for t in everything.values()) for family, _m in rows}
    assert set(filters["family"]) == families and len(families) == 5
    for family, state in filters["family"].items():
        for table, shown in state["tables"].items():
            expected = [row for row in everything[table]["rows"] if row[0] != family]
            assert shown["rows"] == expected, (family, table)
    assert set(filters["model"]) == {"", MODEL, "stories260K"}
    for model, state in filters["model"].items():
        for table, shown in state["tables"].items():
            expected = [row for row in everything[table]["rows"] if model in ("", row[1])]
            assert shown["rows"] == expected and (model == "" or len(expected) > 0), table
    columns = _columns_by_benchmark(page)
    for bench, state in filters["benchmark"].items():
        visible = set(state["tables"]["table-raw"]["columns"])
        assert visible == (set().union(*columns.values()) if bench == ""
                           else columns[""] | columns[bench]), bench
        if bench:
            assert state["plots"] == [f"plot-rate-{bench}"] + (
                ["plot-score_vs_length"] if bench == "regeneration" else [])
            assert state["panels"] == [bench]
    assert filters["views"] == {"rate": ["plot-rate-qa", "plot-score_vs_length"],
                                "bits": ["plot-bits-qa", "plot-score_vs_length"]}


def test_filters_hide_exactly_the_series_of_filtered_rows_in_every_plot_and_legend(
        opened: dict[int, tuple[Report, str, str]], page: Path) -> None:
    owners = _owners(page)
    filters = opened[WIDE][0]["filters"]
    everything = filters["model"][""]["series"]
    charts = [name for name in everything if ":" not in name]
    assert set(charts) == set(_charts(page)) | {
        "legend-rate", "legend-bits", "legend-score_vs_length"}
    assert {token for chart in charts for token in everything[chart]} <= set(owners)
    for family, state in filters["family"].items():
        hidden = {token for token, owner in owners.items() if owner["family"] == family}
        assert any(hidden & set(everything[chart]) for chart in charts), family
        for chart in charts:
            assert state["series"][chart] == [token for token in everything[chart]
                                              if token not in hidden], (family, chart)
        for key, shown in state["series"].items():
            if ":" in key:
                assert shown == (key.split(":", 1)[1] != family), (family, key)
    for model, state in filters["model"].items():
        for chart in charts:
            assert state["series"][chart] == [token for token in everything[chart]
                                              if model in ("", owners[token]["model"])], chart
        lines = {token for chart in charts for token in state["series"][chart]
                 if owners[token]["family"] == ""}
        assert len(lines) == (len(filters["model"]) - 1 if model == "" else 1), model
    nothing = filters["no_family"]
    assert nothing["filtered_note"] and not filters["model"][""]["filtered_note"]
    for chart in charts:  # only the base models' reference lines and legend headers stay
        assert {owners[token]["family"] for token in nothing["series"][chart]} <= {""}


@pytest.mark.parametrize("table", ["table-summary", "table-raw"])
def test_clicking_a_header_sorts_the_rows(
    opened: dict[int, tuple[Report, str, str]], page: Path, table: str
) -> None:
    sort = opened[WIDE][0]["sorts"][table]
    columns = {c["title"]: c["clicks"] for c in sort["columns"]}
    board = json.loads((page.parent / "leaderboard.json").read_text(encoding="utf-8"))
    if table == "table-raw":
        assert list(columns) == board["tables"][0]["columns"]
    for title, (first, second) in columns.items():
        assert first["direction"] == "ascending" and second["direction"] == "descending"
        if any(isinstance(v, str) and v for v in first["values"]):
            continue  # a text column (labels, notes)
        numbers = [v for v in first["values"] if v != ""]
        assert first["values"] == sorted(numbers) + [""] * (len(first["values"]) - len(numbers))
        assert second["values"][: len(numbers)] == sorted(numbers, reverse=True), title
    ascending, descending = ([row.split(" / ", 1)[1] for row in click["order"]]
                             for click in columns["Method" if table == "table-summary"
                                                  else "Compressor"])
    assert ascending == sorted(ascending) and descending == list(reversed(ascending))
    reordered = [t for t, (first, _s) in columns.items() if first["order"] != sort["initial"]]
    assert ("QA F1" if table == "table-summary" else "Rouge-L-F 96") in reordered


def test_hostile_context_renders_as_text(opened: dict[int, tuple[Report, str, str]]) -> None:
    report, _dom, _err = opened[WIDE]
    assert report["hostile"] >= 1 and report["rendered"] == fixture_sample_count()
    assert report["title"] == report["title_before"] == "compressbench leaderboard"
    assert report["pwned"] is None
    assert "<script>document.title='pwned'" in report["context_text"]
    assert "<img src=x onerror=" in report["context_text"] and report["context_children"] == 0


def test_the_probe_detects_an_unsafe_viewer(page: Path, tmp_path: Path) -> None:
    # Control: the same page rendering samples with innerHTML must be caught by the report.
    text = page.read_text(encoding="utf-8")
    unsafe = text.replace(
        "document.getElementById(id).textContent = ", "document.getElementById(id).innerHTML = "
    )
    assert unsafe != text
    control = tmp_path / "unsafe.html"
    control.write_text(unsafe, encoding="utf-8")
    report, _dom, _err = _open(control, tmp_path / "profile", WIDE)
    assert report["pwned"] == "img" and report["context_children"] > 0


def _series_colours(chart: ET.Element) -> dict[str, str]:
    """Per method drawn in ``chart``, the colour of its markers."""
    colours = {}
    for group in chart.iter("g"):
        token = group.attrib.get("data-series", "")
        for use in group.iter("use"):
            if token.startswith("c") and (fill := re.search(r"fill: (#[0-9a-f]{6})",
                                                             use.attrib.get("style", ""))):
                colours[token] = fill.group(1)
    return colours


@pytest.mark.parametrize("width", WIDTHS)
def test_the_screenshot_shows_the_plot_on_the_first_screen(
        opened: dict[int, tuple[Report, str, str]], screenshots: dict[int, Path], page: Path,
        width: int) -> None:
    shot = Image.open(screenshots[width]).convert("RGB")
    assert shot.size == (width, HEIGHT)
    (plot,) = opened[width][0]["first_screen"]["plots"]
    colours = _series_colours(_charts(page)[plot["id"]])
    assert set(colours) == {token for token in plot["series"] if token.startswith("c")}
    assert len(colours) >= 5
    box = plot["box"]
    shown = np.asarray(shot.crop((round(box["left"]), round(box["top"]),
                                  round(box["right"]), round(box["bottom"]))), dtype=int)
    for token, colour in colours.items():
        rgb = np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)])
        pixels = int((np.abs(shown - rgb).max(axis=2) <= 24).sum())
        assert pixels >= 15, (token, colour, pixels)  # each method's markers are on screen
