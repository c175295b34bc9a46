import itertools

import pytest

from bench.compressors._hard_units import split_units

TEXT = ("The game was played on February 7, 2016, at Levi's Stadium. It is 3.5 m long! "
        "Then it ended.")


def pieces(unit: str) -> list[str]:
    return [TEXT[a:b] for a, b in split_units(TEXT, unit)]  # type: ignore[arg-type]


def test_words_and_punctuation():
    assert pieces("token")[:9] == ["The", "game", "was", "played", "on", "February", "7", ",",
                                   "2016"]
    assert "Levi's" in pieces("token") and "3.5" in pieces("token")


def test_phrases_start_at_function_words_and_end_at_punctuation():
    assert pieces("phrase")[:5] == ["The game", "was played", "on February 7,", "2016,",
                                    "at Levi's Stadium."]


def test_sentences():
    assert pieces("sentence") == ["The game was played on February 7, 2016, at Levi's Stadium.",
                                  "It is 3.5 m long!", "Then it ended."]


@pytest.mark.parametrize("unit", ["token", "phrase", "sentence"])
def test_units_cover_every_visible_character_in_order(unit):
    spans = split_units(TEXT, unit)
    assert all(a < b <= c for (a, b), (c, _) in itertools.pairwise(spans))
    covered = "".join(TEXT[a:b] for a, b in spans)
    assert "".join(covered.split()) == "".join(TEXT.split())


def test_unknown_unit():
    with pytest.raises(ValueError, match="unit must be one of"):
        split_units(TEXT, "paragraph")  # type: ignore[arg-type]
