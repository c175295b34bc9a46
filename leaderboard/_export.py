"""Writing tables as Markdown, CSV, LaTeX and JSON."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from typing import Any

from leaderboard._errors import LeaderboardError
from leaderboard._tables import Cell, Table

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
        parts.append("|" + "|".join("---:" if n else "---" for n in numeric_columns(table)) + "|")
        for row in table.rows:
            parts.append("| " + " | ".join(_md_escape(cell.display) for cell in row) + " |")
        parts += [""] + [f"{_md_escape(note)}" for note in table.notes] + [""]
    return "\n".join(parts)


def numeric_columns(table: Table) -> list[bool]:
    """Per column, whether it holds numbers (right-aligned); label columns never do."""
    return [
        i >= 2 and not any(isinstance(row[i].value, str) for row in table.rows)
        for i in range(len(table.columns))
    ]


def to_csv(table: Table) -> str:
    """One table as CSV with full-precision values; a column with standard errors is
    followed by ``<column> stderr``."""
    with_errors = [any(row[i].stderr is not None for row in table.rows)
                   for i in range(len(table.columns))]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    header: list[str] = []
    for title, errors in zip(table.columns, with_errors, strict=True):
        header += [title, f"{title} stderr"] if errors else [title]
    writer.writerow(header)
    for row in table.rows:
        line: list[object] = []
        for cell, errors in zip(row, with_errors, strict=True):
            line.append("" if cell.value is None else cell.value)
            if errors:
                line.append("" if cell.stderr is None else cell.stderr)
        writer.writerow(line)
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
    "±": r"\ensuremath{\pm}",
    "\n": " ",
    "\r": " ",
}


def latex_escape(text: str) -> str:
    """Escape LaTeX's special characters (line breaks become spaces: a ``%`` comment line
    cannot be ended by metadata)."""
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def to_latex(table: Table) -> str:
    """One table as a LaTeX ``tabular`` (booktabs)."""
    spec = "".join("r" if numeric else "l" for numeric in numeric_columns(table))
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
        "rows": [[_cell_json(c) for c in row] for row in table.rows],
        "notes": table.notes,
    }


def _cell_json(cell: Cell) -> dict[str, Any]:
    data: dict[str, Any] = {"value": cell.value, "display": cell.display}
    if cell.stderr is not None:
        data["stderr"] = cell.stderr
    if cell.hint:
        data["hint"] = cell.hint
    return data


def check_finite(tables: Sequence[Table]) -> None:
    """Refuse tables with a number that is not finite (an input too large to compute with),
    naming its table, row and column."""
    for table in tables:
        for row in table.rows:
            for column, cell in zip(table.columns, row, strict=True):
                for number in (cell.value, cell.stderr):
                    if isinstance(number, float) and not math.isfinite(number):
                        raise LeaderboardError(
                            f"table {table.name!r}, row {_row_name(row)!r}, column {column!r}: "
                            f"{number} is not a finite number; an input value of this row is "
                            "too large to compute with"
                        )


def _row_name(row: Sequence[Cell]) -> str:
    return " / ".join(cell.display for cell in row[:2])


def dumps(data: Any) -> str:
    """Stable, readable JSON (numbers that JSON cannot hold are an error)."""
    return json.dumps(data, indent=2, ensure_ascii=False, sort_keys=False, allow_nan=False) + "\n"
