"""The self-contained ``index.html``: tables, plots and the per-sample viewer."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from leaderboard._plots import Plot
from leaderboard._tables import Table

TEMPLATES = Path(__file__).resolve().parent / "templates"


def script_json(data: Any) -> Markup:
    """JSON that is safe inside a ``<script>`` element: ``<``, ``>``, ``&`` are escaped."""
    text = json.dumps(data, ensure_ascii=False, allow_nan=False)
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(char, escape)
    text = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return Markup(text)


def render_html(
    title: str,
    tables: Sequence[Table],
    plots: Sequence[Plot],
    samples: Sequence[Mapping[str, Any]],
    sample_limit: int,
    runs: Sequence[str],
    versions: Mapping[str, str],
    lm_eval_versions: Sequence[str],
    plot_notes: Sequence[str] = (),
) -> str:
    """Render the page with autoescaping and strict undefined variables."""
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        undefined=StrictUndefined,
        keep_trailing_newline=True,
    )
    template = env.get_template("index.html.j2")
    return template.render(
        title=title,
        tables=tables,
        plots=plots,
        plot_notes=plot_notes,
        samples_json=script_json(list(samples)),
        sample_count=len(samples),
        sample_limit=sample_limit,
        runs=runs,
        versions=versions,
        lm_eval_versions=lm_eval_versions,
    )
