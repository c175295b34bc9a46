"""Hand-computed cases for bench.metrics."""

from __future__ import annotations

import pytest

from bench import metrics as m

ALL_QA = (m.squad_exact_match, m.squad_f1, m.exact_match_500x, m.f1_500x)
ALL_REGEN = (m.rouge_l_f, m.bleu, m.rouge_l_f_500x, m.bleu_500x)


# ----------------------------------------------------------------- SQuAD


def test_squad_articles_punctuation_and_case():
    assert m.normalize_answer("The  Beatles!") == "beatles"
    assert m.squad_exact_match("The Beatles!", ["beatles"]) == 1.0
    assert m.squad_exact_match("Beatles band", ["beatles"]) == 0.0
    # "an" is removed as a word only, not inside "ant" or "Anne"
    assert m.normalize_answer("an ant, Anne, a apple") == "ant anne apple"


def test_squad_f1_hand_computed():
    # pred tokens [cat, sat], gold [cat]: P = 1/2, R = 1, F1 = 2/3
    assert m.squad_f1("the cat sat", ["a cat"]) == pytest.approx(2 / 3)
    # multiset overlap: pred [a? no: b, b, c], gold [b, c, c] -> common b, c = 2; P = R = 2/3
    assert m.squad_f1("b b c", ["b c c"]) == pytest.approx(2 / 3)
    assert m.squad_f1("dog", ["cat"]) == 0.0


def test_squad_max_over_golds():
    golds = ["Denver Broncos", "the Broncos", "Carolina Panthers"]
    assert m.squad_f1("Broncos", golds) == 1.0
    assert m.squad_exact_match("broncos.", golds) == 1.0
    # best gold for "Denver" is "Denver Broncos": P = 1, R = 1/2 -> 2/3
    assert m.squad_f1("Denver", golds) == pytest.approx(2 / 3)


def test_squad_unicode_follows_official_rules():
    # accents are kept (no folding), lower-casing is Unicode-aware
    assert m.squad_exact_match("Café", ["cafe"]) == 0.0
    assert m.squad_exact_match("ZÜRICH", ["zürich"]) == 1.0
    # only ASCII punctuation is removed: the ideographic full stop stays part of the token
    assert m.squad_exact_match("東京。", ["東京"]) == 0.0
    assert m.squad_f1("東京。", ["東京"]) == 0.0
    assert m.squad_exact_match("東京.", ["東京"]) == 1.0
    # curly quotes are kept, straight quotes removed
    assert m.squad_exact_match("“Paris”", ["Paris"]) == 0.0
    assert m.squad_exact_match('"Paris"', ["Paris"]) == 1.0
    # "the" between Unicode punctuation is still a word and is removed
    assert m.normalize_answer("«the» Zürich") == "« » zürich"


@pytest.mark.parametrize("metric", ALL_QA)
@pytest.mark.parametrize("empty", ["", "   ", "\n"])
def test_empty_prediction_scores_zero(metric, empty):
    assert metric(empty, ["the"]) == 0.0  # even against a gold normalising to ""
    assert metric(empty, ["Paris"]) == 0.0


@pytest.mark.parametrize("metric", ALL_QA)
def test_empty_answers_raise(metric):
    with pytest.raises(ValueError, match="answers is empty"):
        metric("Paris", [])
    with pytest.raises(TypeError, match="sequence of gold strings"):
        metric("Paris", "Paris")


# ----------------------------------------------------------------- 500x QA


def test_word_tokenize_500x_matches_treebank_rules():
    assert m.word_tokenize_500x("He left. She came.") == ["He", "left", ".", "She", "came", "."]
    assert m.word_tokenize_500x("Mr. Smith didn't go.") == ["Mr.", "Smith", "did", "n't", "go", "."]
    assert m.word_tokenize_500x('It cost $3.5, "roughly".') == [
        "It",
        "cost",
        "$",
        "3.5",
        ",",
        "``",
        "roughly",
        "''",
        ".",
    ]


def test_500x_is_case_sensitive_and_unnormalised():
    assert m.exact_match_500x(" Denver Broncos\n", ["Denver Broncos"]) == 1.0
    assert m.exact_match_500x("denver broncos", ["Denver Broncos"]) == 0.0
    assert m.f1_500x("denver broncos", ["Denver Broncos"]) == 0.0
    assert m.exact_match_500x("The Broncos", ["Broncos"]) == 0.0
    # "Broncos ." -> tokens [Broncos, .] vs [Broncos]: P = 1/2, R = 1 -> 2/3
    assert m.f1_500x("Broncos .", ["Broncos"]) == pytest.approx(2 / 3)


def test_500x_scores_the_gold_with_best_rouge_not_the_best_gold():
    # Rouge-L (space-split words): "Paris," never matches "Paris", so gold 2 is chosen
    # (F = 0.5); its token F1 is 2 * (1/3) * (1/2) / (1/3 + 1/2) = 0.4, although gold 1
    # would give 0.5.
    golds = ["Paris", "in France"]
    assert m.f1_500x("Paris, France", golds) == pytest.approx(0.4)
    assert m.squad_f1("Paris, France", golds) == pytest.approx(2 / 3)


def test_500x_ties_pick_the_first_gold():
    # Rouge-L words are space-split, so "x," matches neither gold: both score 0 and the
    # first is used (token F1 of [x, ","] vs [y] = 0), although "x" would give 2/3
    assert m.f1_500x("x,", ["y", "x"]) == 0.0
    assert m.f1_500x("x,", ["x", "y"]) == pytest.approx(2 / 3)
    # prediction made only of dots has no Rouge sentence: scores 0 instead of being dropped
    assert m.f1_500x("...", ["..."]) == 0.0


# ----------------------------------------------------------------- regeneration


def test_rouge_l_f_hand_computed():
    assert m.rouge_l_f("the cat sat", "the cat") == pytest.approx(0.8)
    assert m.rouge_l_f("The CAT", "the cat") == 1.0  # rouge_score lower-cases
    # sentence-level LCS: [a b c] vs [c a b] -> 2/3
    assert m.rouge_l_f("a b. c", "c. a b") == pytest.approx(2 / 3)


def test_rouge_l_f_500x_hand_computed():
    # word SETS: ref m = 5, hyp n = 3; LCS words {the, cat, sat}: R = 3/5, P = 1,
    # F = 2 * 0.6 / 1.6 = 0.75 (less the package's 1e-8 in the denominator)
    assert m.rouge_l_f_500x("the cat sat", "the cat sat on the mat") == pytest.approx(0.75)
    # the package reconstructs ONE LCS and counts its words as a set: for
    # [the cat the cat sat] it backtracks to "the cat the" -> {the, cat}: R = 2/5, P = 2/3
    assert m.rouge_l_f_500x("the cat the cat sat", "the cat sat on the mat") == pytest.approx(0.5)
    # summary level: sentences split on "." are matched across, order of sentences is free
    assert m.rouge_l_f_500x("a b. c", "c. a b") == pytest.approx(1.0)
    assert m.rouge_l_f_500x("The cat", "the cat") == pytest.approx(0.5)  # case-sensitive


def test_bleu_hand_computed():
    # p1 = 5/6, p2 = 3/5, p3 = 2/4, p4 = 1/3, equal lengths (BP = 1): (1/12) ** (1/4)
    hyp, ref = "the cat sat on the mat", "the cat sat on a mat"
    assert m.bleu(hyp, ref) == pytest.approx((1 / 12) ** 0.25)
    assert m.bleu_500x(hyp, ref) == pytest.approx((1 / 12) ** 0.25)
    assert m.bleu(ref, ref) == pytest.approx(1.0)
    assert m.bleu_500x(ref, ref) == pytest.approx(1.0)
    assert m.bleu_500x("The cat sat on a mat", ref) < 1.0


@pytest.mark.parametrize("metric", ALL_REGEN)
def test_regeneration_empty_prediction_and_reference(metric):
    assert metric("", "some reference text") == 0.0
    assert metric("  ", "some reference text") == 0.0
    with pytest.raises(ValueError):
        metric("some text", " ")


# ----------------------------------------------------------------- batches


def test_batches_match_single_calls_and_check_lengths():
    preds = ["Denver Broncos", "", "Paris, France", "broncos"]
    golds = [["Denver Broncos"], ["x"], ["Paris", "in France"], ["The Broncos"]]
    squad = m.batch_squad_scores(preds, golds)
    x500 = m.batch_qa_500x_scores(preds, golds)
    for i, (p, g) in enumerate(zip(preds, golds, strict=True)):
        single = m.qa_scores(p, g)
        assert squad["squad_f1"][i] == single["squad_f1"]
        assert squad["squad_exact_match"][i] == single["squad_exact_match"]
        assert x500["f1_500x"][i] == single["f1_500x"]
        assert x500["exact_match_500x"][i] == single["exact_match_500x"]
    assert squad["squad_f1"][1] == 0.0  # the empty prediction is counted, not dropped
    assert len(squad["squad_f1"]) == len(preds)
    regen = m.batch_regeneration_scores(["a b c", ""], ["a b c", "a b"])
    assert set(regen) == set(m.REGENERATION_METRICS)
    assert [row[1] for row in regen.values()] == [0.0, 0.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="2 predictions but 1"):
        m.batch_squad_scores(["a", "b"], [["a"]])


def test_one_pass_squad_scores_equal_the_separate_definitions():
    import random

    rng = random.Random(7)
    words = ["the", "a", "Paris", "paris.", "an", "cat", "dog", "!", "1999", "Café", "", " "]
    for _ in range(3000):
        prediction = " ".join(rng.choices(words, k=rng.randint(0, 4)))
        golds = [" ".join(rng.choices(words, k=rng.randint(0, 3))) for _ in range(3)]
        assert m.squad_scores(prediction, golds) == (
            m.squad_exact_match(prediction, golds), m.squad_f1(prediction, golds))
    assert m.squad_scores("the", ["an"]) == (1.0, 0.0)  # both normalise to nothing
