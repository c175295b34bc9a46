"""A figure as an inline ``<svg>``: text kept as escaped text, filter tokens as
``data-series``, ids that stay apart between figures, a size in pixels."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from leaderboard._plots import DPI, FILTER_GID, literal
from leaderboard._svg import inline_svg

HOSTILE = "<script>document.title='pwned'</script> $x^2$ ]]> --> &amp;"


def _figure(label: str = "a", token: str = "c0") -> Figure:
    fig, ax = plt.subplots(figsize=(3.0, 2.0))
    for line in ax.errorbar([1, 2], [3, 4], yerr=[0.2, 0.1], marker="o", capsize=2):
        if line is not None:
            for artist in line if isinstance(line, tuple) else (line,):
                artist.set_gid(FILTER_GID.format(token=token))
    ax.plot([1, 2], [4, 3], marker="s")  # untagged
    literal(ax.set_title(label))
    return fig


def test_text_stays_literal_and_inert() -> None:
    svg = inline_svg(_figure(HOSTILE), "x", HOSTILE)
    assert "<script" not in svg and "]]>" not in svg and "<!--" not in svg
    root = ET.fromstring(svg)
    assert root.attrib["aria-label"] == HOSTILE and root.attrib["role"] == "img"
    assert HOSTILE in [text.text for text in root.iter("text")]  # as written: no mathtext
    assert {element.tag for element in root.iter()} <= {
        "svg", "g", "path", "defs", "use", "text", "clipPath", "rect"}


def test_tagged_artists_carry_their_token_and_no_other_group_an_id() -> None:
    root = ET.fromstring(inline_svg(_figure(token="c7"), "x", ""))
    tagged = [group for group in root.iter("g") if "data-series" in group.attrib]
    assert {group.attrib["data-series"] for group in tagged} == {"c7"} and len(tagged) == 4
    assert all("id" not in group.attrib for group in root.iter("g"))
    drawn = {use.attrib["style"] for group in tagged for use in group.iter("use")}
    untagged = [use for use in root.iter("use")
                if use.attrib["style"] not in drawn]  # the untagged line's markers
    assert untagged


def _ids_and_references(svg: str) -> tuple[set[str], set[str]]:
    root = ET.fromstring(svg)
    ids = {element.attrib["id"] for element in root.iter() if "id" in element.attrib}
    references = {value[1:] for element in root.iter()
                  for name, value in element.attrib.items() if name == "href"}
    references |= set(re.findall(r"url\(#([^)]+)\)", svg))
    return ids - {root.attrib["id"]}, references


def test_ids_are_prefixed_resolve_and_stay_apart_between_figures() -> None:
    first, second = inline_svg(_figure(), "one", ""), inline_svg(_figure(), "two", "")
    ids_one, refs_one = _ids_and_references(first)
    ids_two, refs_two = _ids_and_references(second)
    assert refs_one and refs_one == ids_one and refs_two == ids_two
    assert all(name.startswith("one-") for name in ids_one) and not ids_one & ids_two
    assert 'id="plot-one"' in first


def test_size_is_in_pixels_at_the_plots_resolution() -> None:
    root = ET.fromstring(inline_svg(_figure(), "x", ""))
    _x, _y, width, height = map(float, root.attrib["viewBox"].split())
    assert int(root.attrib["width"]) == -(-width * DPI // 72)
    assert int(root.attrib["height"]) == -(-height * DPI // 72)
