"""Writing tables as Markdown, CSV, LaTeX and JSON; atomic file writes."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench._atomic import atomic_write_bytes
from leaderboard._tables import Table


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and ``os.replace`` (mode from the
    umask; see :mod:`bench._atomic`)."""
    atomic_write_bytes(path, data.encode("utf-8") if isinstance(data, str) else data)


_MD_SPECIAL = {
    "\\": "\\\\",
    "|": "\\|",
    "`": "\\`",
    "[": "\\[",
    "]": "\\]",
    "&": "&amp;",
    "<": "&lt;",
    ">": "&gt;",
    "\n": " ",
    "\r": " ",
}


def _md_escape(text: str) -> str:
    """Text shown literally in Markdown: no HTML, links or code spans, table cells intact."""
    return "".join(_MD_SPECIAL.get(ch, ch) for ch in text)


def to_markdown(tables: Sequence[Table], title: str) -> str:
    """All tables as one Markdown document."""
    parts = [f"# {_md_escape(title)}", ""]
    for table in tables:
        parts += [f"## {_md_escape(table.title)}", ""]
        parts.append("| " + " | ".join(_md_escape(c) for c in table.columns) + " |")
        parts.append(
            "|" + "|".join("---" if i < 2 else "---:" for i in range(len(table.columns))) + "|"
        )
        for row in table.rows:
            parts.append("| " + " | ".join(_md_escape(cell.display) for cell in row) + " |")
        parts += [""] + [f"{_md_escape(note)}" for note in table.notes] + [""]
    return "\n".join(parts)


def to_csv(table: Table) -> str:
    """One table as CSV with full-precision values."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(table.columns)
    for row in table.rows:
        writer.writerow(["" if cell.value is None else cell.value for cell in row])
    return buffer.getvalue()


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "\n": " ",
    "\r": " ",
}


def latex_escape(text: str) -> str:
    """Escape LaTeX's special characters (line breaks become spaces: a ``%`` comment line
    cannot be ended by metadata)."""
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def to_latex(table: Table) -> str:
    """One table as a LaTeX ``tabular`` (booktabs)."""
    spec = "ll" + "r" * (len(table.columns) - 2)
    lines = [f"% {latex_escape(table.title)}", f"\\begin{{tabular}}{{{spec}}}", r"\toprule"]
    lines.append(" & ".join(latex_escape(c) for c in table.columns) + r" \\")
    lines.append(r"\midrule")
    for row in table.rows:
        lines.append(" & ".join(latex_escape(cell.display) for cell in row) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", ""]
    return "\n".join(lines)


def table_json(table: Table) -> dict[str, Any]:
    """A table as plain JSON (values and displays)."""
    return {
        "name": table.name,
        "title": table.title,
        "columns": table.columns,
        "rows": [[{"value": c.value, "display": c.display} for c in row] for row in table.rows],
        "notes": table.notes,
    }


def dumps(data: Any) -> str:
    """Stable, readable JSON."""
    return json.dumps(data, indent=2, ensure_ascii=False, sort_keys=False) + "\n"
