"""A matplotlib figure as an ``<svg>`` element to write into the page.

Text stays text (``svg.fonttype: none``), escaped by the XML serialiser; the series that the
figure tagged (:data:`FILTER_GID`) carry ``data-series`` for the page's filters. Ids are
prefixed with the plot's name, so that several figures share one document, and the ones
nothing refers to are dropped. The element is sized in pixels as the PNG of the figure at
``DPI`` would be.
"""

from __future__ import annotations

import io
import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable

import matplotlib.pyplot as plt
from markupsafe import Markup
from matplotlib.figure import Figure

from leaderboard._plots import DPI, FILTER_GID

DROPPED = {"metadata", "style"}  # RDF metadata; the stroke defaults the page's CSS sets
COORDINATES = {"d", "x", "y", "transform"}
_DECIMALS = re.compile(r"-?[0-9]+\.[0-9]+")
_REFERENCE = re.compile(r"url\(#([^)]+)\)")
_TAGGED = re.compile(FILTER_GID.format(token=r"([a-z]+[0-9]+)"))


def figure_svg(fig: Figure) -> str:
    """The figure as an SVG document, cropped to its artists, then closed."""
    buffer = io.StringIO()
    with plt.rc_context({"svg.fonttype": "none", "font.sans-serif": ["DejaVu Sans"]}):
        fig.savefig(buffer, format="svg", bbox_inches="tight", pad_inches=0.1,
                    metadata={"Date": None})
    plt.close(fig)
    return buffer.getvalue()


def inline_svg(fig: Figure, name: str, label: str) -> Markup:
    """The figure as the ``<svg>`` element ``plot-{name}`` described by ``label``."""
    root = ET.fromstring(figure_svg(fig))
    for element in root.iter():
        element.tag = _local(element.tag)
        for attribute in [a for a in element.attrib if a.startswith("{")]:
            element.set(_local(attribute), element.attrib.pop(attribute))
    _drop(root)
    _tidy(root)
    _rename_ids(root, name)
    _size(root)
    root.attrib.pop("version", None)
    root.set("id", f"plot-{name}")
    root.set("class", "chart")
    root.set("role", "img")
    root.set("aria-label", label)
    return Markup(ET.tostring(root, encoding="unicode"))


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _drop(root: ET.Element) -> None:
    """Drop the elements the page does not need, then the ``defs`` left empty."""
    _remove(root, lambda child: child.tag in DROPPED)
    _remove(root, lambda child: child.tag == "defs" and len(child) == 0)


def _remove(root: ET.Element, dropped: Callable[[ET.Element], bool]) -> None:
    for parent in list(root.iter()):
        for child in [child for child in parent if dropped(child)]:
            parent.remove(child)


def _tidy(root: ET.Element) -> None:
    """Drop the indentation between elements, text rotations by 0 degrees, and digits of
    coordinates below a hundredth of a point."""
    for element in root.iter():
        if element.text is not None and not element.text.strip():
            element.text = None
        element.tail = None
        if element.attrib.get("transform", "").startswith("rotate(-0 "):
            del element.attrib["transform"]
        for attribute in COORDINATES & set(element.attrib):
            value = " ".join(element.attrib[attribute].split())
            element.set(attribute, _DECIMALS.sub(_rounded, value))


def _rounded(match: re.Match[str]) -> str:
    return f"{float(match.group(0)):.2f}".rstrip("0").rstrip(".")


def _references(root: ET.Element) -> set[str]:
    found = set()
    for element in root.iter():
        for attribute, value in element.attrib.items():
            if attribute == "href" and value.startswith("#"):
                found.add(value[1:])
            found.update(_REFERENCE.findall(value))
    return found


def _rename_ids(root: ET.Element, name: str) -> None:
    """Tagged groups get ``data-series``; referenced ids are prefixed; others are dropped."""
    referenced = _references(root)
    renamed: dict[str, str] = {}
    for element in root.iter():
        old = element.attrib.pop("id", None)
        if old is None:
            continue
        if tagged := _TAGGED.fullmatch(old):
            element.set("data-series", tagged.group(1))
        elif old in referenced:
            renamed[old] = f"{name}-{len(renamed)}"
            element.set("id", renamed[old])
    for element in root.iter():
        for attribute, value in list(element.attrib.items()):
            if attribute == "href" and value[1:] in renamed:
                element.set(attribute, "#" + renamed[value[1:]])
            elif "url(#" in value:
                element.set(attribute, _REFERENCE.sub(
                    lambda match: f"url(#{renamed.get(match.group(1), match.group(1))})", value))


def _size(root: ET.Element) -> None:
    """Width and height in pixels at ``DPI`` (the SVG gives points)."""
    for attribute in ("width", "height"):
        points = float(root.attrib[attribute].removesuffix("pt"))
        root.set(attribute, str(math.ceil(points * DPI / 72)))
