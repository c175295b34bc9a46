"""The self-contained ``index.html``: plots, tables, the per-sample viewer and the footer,
rendered by Jinja with autoescaping; styles and scripts inline, nothing fetched."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from leaderboard._page import Page

TEMPLATES = Path(__file__).resolve().parent / "templates"


def script_json(data: Any) -> Markup:
    """JSON that is safe inside a ``<script>`` element: ``<``, ``>``, ``&`` are escaped."""
    text = json.dumps(data, ensure_ascii=False, allow_nan=False)
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(char, escape)
    text = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return Markup(text)


def render_html(page: Page) -> str:
    """Render the page with autoescaping and strict undefined variables."""
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        undefined=StrictUndefined,
        keep_trailing_newline=True,
    )
    template = env.get_template("index.html.j2")
    return template.render(page=page, samples_json=script_json(page.samples))
