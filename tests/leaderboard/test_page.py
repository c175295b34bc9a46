"""What the page says beyond the exported tables: the summary, the plots' switch and smoke
rows, the filters' data, the footer, and rates shown as they were requested."""

from __future__ import annotations

import csv
import html
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from markupsafe import escape

from leaderboard import read_runs
from leaderboard._cli import main
from leaderboard._environment import builder_version
from leaderboard._metrics import metric_style
from leaderboard._page_plots import page_plots
from leaderboard._runs import merge_runs
from leaderboard._summary import summary_table
from leaderboard._tables import Rows
from tests.leaderboard._lmeval_files import write_results
from tests.leaderboard._page_runs import (
    ENV_REPORT,
    GPU,
    MODEL,
    ROWS,
    SMOKE,
    write_page_runs,
)
from tests.leaderboard.conftest import FIXTURE_RUNS

NAMES = metric_style("squad")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_page_runs(tmp_path_factory.mktemp("runs"))


@pytest.fixture(scope="module")
def rows(runs: Path) -> Rows:
    return merge_runs(read_runs([runs], with_samples=False))


@pytest.fixture(scope="module")
def site(runs: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    assert main(["build", str(runs), str(FIXTURE_RUNS), "--out", str(out)]) == 0
    return out


def _summary(rows: Rows) -> dict[str, dict[str, str]]:
    table = summary_table(rows, NAMES, "none")
    return {row[1].display: {title: cell.display for title, cell in
                             zip(table.columns, row, strict=True)} for row in table.rows}


def test_the_summary_gives_retention_and_scores_per_method_and_rate(rows: Rows) -> None:
    summary = _summary(rows)
    full = ROWS["none"][4]
    for name, (_c, _s, _f, _b, score, rate, bits) in ROWS.items():
        label = next(label for label in summary if ROWS[name][0] in label
                     and all(f"{k}={v}" in label for k, v in ROWS[name][1].items()))
        shown = summary[label]
        assert shown["QA F1"] == f"{score * 100:.2f}" and shown["Rouge-L-F"] == f"{score * 100:.2f}"
        assert shown["retention %"] == f"{score / full * 100:.1f}"
        assert float(shown["rate"]) == rate and float(shown["bits / original byte"]) == bits


def test_the_summary_is_ordered_by_family_method_and_falling_rate(rows: Rows) -> None:
    order = list(_summary(rows))
    assert order[0] == "none" and order[-1] == "llmzip (window=512)"  # baseline ... lossless
    assert order.index("truncate (rate=0.5)") + 1 == order.index("truncate (rate=0.25)")


def test_smoke_rows_are_listed_but_not_plotted(rows: Rows, site: Path) -> None:
    assert SMOKE in _summary(rows)
    panels, legends = page_plots(rows, NAMES)
    entries = [item.text for legend in legends for item in legend.items]
    assert panels and legends and not [p for p in panels if "random_drop" in p.alt]
    assert "random_drop" not in " ".join(entries) and "truncate" in entries
    assert [p for p in panels if "truncate" in p.alt]  # the other hard rows are
    page = (site / "index.html").read_text(encoding="utf-8")
    assert f"Listed, not plotted (&#39;all scores 0: smoke test&#39;): {MODEL} / {SMOKE}." in page


def test_requested_rates_show_as_requested_everywhere(site: Path) -> None:
    with (site / "efficiency.csv").open(encoding="utf-8") as handle:
        requested = {(row["Model"], row["Compressor"]): row["requested rate"]
                     for row in csv.DictReader(handle)}
    assert float(requested[MODEL, "truncate (rate=0.25)"]) == 0.25
    markdown = (site / "efficiency.md").read_text(encoding="utf-8")
    latex = (site / "efficiency.tex").read_text(encoding="utf-8")
    page = html.unescape((site / "index.html").read_text(encoding="utf-8"))
    header = next(line for line in markdown.splitlines() if line.startswith("| Model"))
    column = [c.strip() for c in header.strip("|").split("|")].index("requested rate")
    row = next(line for line in markdown.splitlines() if "truncate (rate=0.25)" in line
               and MODEL in line)
    assert [c.strip() for c in row.strip("|").split("|")][column] == "0.25"
    tex_row = next(line for line in latex.splitlines() if "truncate (rate=0.25)" in line
                   and MODEL in line)
    assert [c.strip() for c in tex_row.rstrip("\\ ").split("&")][column] == "0.25"
    table = page.split('id="table-efficiency"', 1)[1].split("</table>", 1)[0]
    html_row = next(r for r in table.split("<tr") if "truncate (rate=0.25)" in r and MODEL in r)
    assert 'data-value="0.25">0.25</td>' in html_row


def test_the_footer_says_when_with_what_and_on_what(site: Path, runs: Path) -> None:
    page = (site / "index.html").read_text(encoding="utf-8")
    count = sum(1 for root in (runs, FIXTURE_RUNS) for _path in root.rglob("results_*.json"))
    footer = html.unescape(re.sub(r"<[^>]+>", " ", page.split("<footer>", 1)[1]
                                  .split("</footer>", 1)[0]))
    text = " ".join(footer.split())
    assert f"Runs {count} results file(s), 2026-01-01 to 2026-11-29" in text
    assert f"page built with {builder_version()}" in text
    assert "runs recorded by harness 1, results record 1.1" in text
    assert "lm-eval 0.4.13 (transformers 5.23.0, 5.24.0)" in text
    assert f"{MODEL} (7,000,000 parameters, bfloat16)" in text
    assert "stories260K (292,800 parameters, float32)" in text
    assert f"cuda:0: 2 x {GPU}; AMD EPYC 9454 (16 CPUs)" in text and "CPU(s):  16" in ENV_REPORT
    assert "cpu: AMD EPYC (2 CPUs)" in text  # the committed runs' environment report


def test_rows_and_columns_carry_what_the_filters_read(site: Path) -> None:
    page = (site / "index.html").read_text(encoding="utf-8")
    summary = page.split('id="table-summary"', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r'<tr data-family="([^"]+)" data-model="([^"]+)">', summary)
    assert (ROWS["press-0.5"][2], MODEL) in rows and ("baseline", "stories260K") in rows
    assert len(rows) == len(ROWS) + 5
    options = re.findall(r'<option value="([^"]*)">', page.split('id="filter-benchmark"', 1)[1]
                         .split("</select>", 1)[0])
    assert options == ["", "arxivqa", "squad", "relation_extraction", "hotpotqa", "race",
                       "regeneration"]
    assert 'data-bench="squad">SQuAD F1</th>' in page


def test_labels_in_the_filters_and_summary_are_escaped(runs: Path, tmp_path: Path) -> None:
    hostile = '"><img src=x onerror=alert(1)>'
    root = write_page_runs(tmp_path / "runs")
    for path in root.rglob("results_*.json"):
        text = path.read_text(encoding="utf-8")
        path.write_text(text.replace(MODEL, json.dumps(f"org/m{hostile}")[1:-1]),
                        encoding="utf-8")
    assert main(["build", str(root), "--out", str(tmp_path / "site")]) == 0
    page = (tmp_path / "site" / "index.html").read_text(encoding="utf-8")
    assert "<img src=x" not in page
    assert page.count(str(escape(f"m{hostile}"))) >= len(ROWS) * 2


def test_retention_compares_the_lengths_both_rows_ran(tmp_path: Path) -> None:
    full = {"compressed_regeneration_96": {"rouge_l_f": 0.4},
            "compressed_regeneration_192": {"rouge_l_f": 0.2}}
    write_results(tmp_path / "none", "pretrained=m,compressor=none", full)
    write_results(tmp_path / "cut", "pretrained=m,compressor=truncate,rate=0.5",
                  {"compressed_regeneration_96": {"rouge_l_f": 0.3}})
    summary = _summary(merge_runs(read_runs([tmp_path], with_samples=False)))
    assert summary["truncate (rate=0.5)"]["retention %"] == f"{0.3 / 0.4 * 100:.1f}"


def test_labels_stay_literal_and_inert_in_the_plots_and_legends(tmp_path: Path) -> None:
    note = "<script>document.body.dataset.pwned=1</script>$x^2$"
    scores = {task: {metric: 0.5, "compression_ratio": 0.5, "compressed_bits": 400.0,
                     "original_bytes": 1000.0}
              for task, metric in (("compressed_squad", "squad_f1"),
                                   ("compressed_regeneration_96", "rouge_l_f"),
                                   ("compressed_regeneration_192", "rouge_l_f"))}
    write_results(tmp_path / "runs" / "a", {"pretrained": "m", "compressor": "truncate",
                                             "note": note}, scores)
    write_results(tmp_path / "runs" / "b", "pretrained=m,compressor=none", scores)
    assert main(["build", str(tmp_path / "runs"), "--out", str(tmp_path / "site")]) == 0
    page = (tmp_path / "site" / "index.html").read_text(encoding="utf-8")
    label = f"truncate (note={note})"
    assert "<script>document" not in page
    charts = [ET.fromstring(svg) for svg in re.findall(r"<svg .*?</svg>", page, re.S)]
    assert len(charts) > 2 and all(f"m / {label}: " in chart.attrib["aria-label"]
                                   for chart in charts)
    assert not [element for chart in charts for element in chart.iter()
                if element.tag not in ("svg", "g", "path", "defs", "use", "text", "clipPath",
                                       "rect")]
    legends = re.findall(r'<ul class="legend".*?</ul>', page, re.S)
    assert len(legends) == 3 and all(f"<span>{escape(label)}</span>" in legend
                                     for legend in legends)
