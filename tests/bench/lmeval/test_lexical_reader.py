"""The non-neural reader used by the demo."""

from bench.lmeval.lexical_reader import best_sentence, extract_answer

CONTEXT = ("The Velmora bridge was built in 1887 by the engineer Tomas Hurl. It spans the "
           "river Ost. Its towers are made of grey granite from the Kessel quarry.")


def test_picks_the_sentence_sharing_the_question_words():
    assert best_sentence(CONTEXT, "What are the towers made of?").startswith("Its towers")


def test_answers_with_a_typed_span_absent_from_the_question():
    assert extract_answer(CONTEXT, "When was the Velmora bridge built?") == "1887"
    assert extract_answer(CONTEXT, "Who built the Velmora bridge?") == "Tomas Hurl"
    assert extract_answer(CONTEXT, "Where does the granite come from?") == "Kessel"


def test_answer_removed_from_the_context_is_not_found():
    cut = CONTEXT.replace("Tomas Hurl", "someone")
    assert "Hurl" not in extract_answer(cut, "Who built the Velmora bridge?")


def test_empty_context_gives_empty_answer():
    assert extract_answer("", "Who?") == ""
