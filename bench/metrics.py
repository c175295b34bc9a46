"""Answer and regeneration metrics, all in [0, 1].

Two families, under different names because they give different numbers:

* **Standard** - ``squad_exact_match`` / ``squad_f1`` (official SQuAD v1.1 normalisation, max
  over golds), ``rouge_l_f`` (Google ``rouge_score`` rougeL F-measure) and ``bleu``
  (sacrebleu sentence BLEU).
* **500xCompressor-compatible** - ``exact_match_500x`` / ``f1_500x`` (case-sensitive, raw
  word tokens, gold chosen by Rouge-L as in that paper's evaluation script),
  ``rouge_l_f_500x`` (the PyPI ``rouge`` package's summary-level Rouge-L) and ``bleu_500x``
  (NLTK sentence BLEU, smoothing method1).

One deliberate difference from the 500xCompressor scripts everywhere: an empty (or
whitespace-only) prediction scores 0 and is counted; it is never dropped.

Every function is pure and deterministic; tokenisations are cached so that scoring 100k
pairs with repeated golds stays fast. NLTK, rouge-score and sacrebleu are imported on first
use, so importing this module (as every lm-eval run with the plug-in does) stays cheap.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence
from functools import cache, lru_cache
from typing import TYPE_CHECKING, Any

from bench.substrate.errors import InputError

if TYPE_CHECKING:
    from nltk.tokenize.destructive import NLTKWordTokenizer
    from nltk.tokenize.punkt import PunktSentenceTokenizer

__all__ = [
    "QA_500X_METRICS",
    "QA_METRICS",
    "REGENERATION_METRICS",
    "batch_qa_500x_scores",
    "batch_regeneration_scores",
    "batch_squad_scores",
    "bleu",
    "bleu_500x",
    "exact_match_500x",
    "f1_500x",
    "normalize_answer",
    "qa_scores",
    "regeneration_scores",
    "rouge_l_f",
    "rouge_l_f_500x",
    "squad_exact_match",
    "squad_f1",
    "squad_scores",
    "word_tokenize_500x",
]

QA_METRICS = ("squad_exact_match", "squad_f1")
QA_500X_METRICS = ("exact_match_500x", "f1_500x")
REGENERATION_METRICS = ("rouge_l_f", "bleu", "rouge_l_f_500x", "bleu_500x")

_CACHE_SIZE = 1 << 15  # strings; bounded so long regeneration texts cannot pile up


def _check_answers(answers: Sequence[str]) -> None:
    if isinstance(answers, str):
        raise TypeError("answers must be a sequence of gold strings, not one string")
    if len(answers) == 0:
        raise InputError("answers is empty: a question needs at least one gold answer")


# --------------------------------------------------------------------------- SQuAD v1.1

_PUNCTUATION_TABLE = str.maketrans("", "", string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


@lru_cache(maxsize=_CACHE_SIZE)
def normalize_answer(text: str) -> str:
    """Official SQuAD v1.1 normalisation, in its order.

    Lower-case (``str.lower``, Unicode-aware), delete every ASCII punctuation character of
    ``string.punctuation`` (Unicode punctuation such as ``“ ” ， 。 ¿`` is kept, as in the
    official script), replace the words ``a``/``an``/``the`` by a space (``\\b`` word
    boundaries of Python 3's Unicode ``re``), and collapse whitespace (``str.split``).
    Accents are not stripped: ``Café`` normalises to ``café``.
    """
    text = text.lower().translate(_PUNCTUATION_TABLE)
    return " ".join(_ARTICLES.sub(" ", text).split())


@lru_cache(maxsize=_CACHE_SIZE)
def _squad_tokens(text: str) -> tuple[str, ...]:
    return tuple(normalize_answer(text).split())


def _token_f1(prediction: Sequence[str], gold: Sequence[str]) -> float:
    common = Counter(prediction) & Counter(gold)
    num_same = sum(common.values())
    if num_same == 0:
        return 0.0
    precision = num_same / len(prediction)
    recall = num_same / len(gold)
    return 2 * precision * recall / (precision + recall)


def squad_scores(prediction: str, answers: Sequence[str]) -> tuple[float, float]:
    """``(squad_exact_match, squad_f1)`` in one pass: each text normalised once."""
    _check_answers(answers)
    if not prediction.strip():
        return 0.0, 0.0
    predicted = _squad_tokens(prediction)
    exact = 0.0
    f1 = 0.0
    for gold in answers:
        gold_tokens = _squad_tokens(gold)
        if gold_tokens == predicted:
            exact = 1.0
        if predicted:
            f1 = max(f1, _token_f1(predicted, gold_tokens))
    return exact, f1


def squad_exact_match(prediction: str, answers: Sequence[str]) -> float:
    """1.0 if the SQuAD-normalised prediction equals any normalised gold, else 0.0.

    A prediction that is empty or only whitespace scores 0.0 (even against a gold that
    normalises to the empty string). Raises ``ValueError`` if ``answers`` is empty.
    """
    _check_answers(answers)
    if not prediction.strip():
        return 0.0
    normalised = normalize_answer(prediction)
    return float(any(normalised == normalize_answer(gold) for gold in answers))


def squad_f1(prediction: str, answers: Sequence[str]) -> float:
    """Official SQuAD v1.1 token F1, maximised over the golds.

    Tokens are ``normalize_answer(text).split()``; F1 is the harmonic mean of precision and
    recall of the multiset overlap; 0.0 without overlap or for an empty prediction. Raises
    ``ValueError`` if ``answers`` is empty.
    """
    _check_answers(answers)
    predicted = _squad_tokens(prediction)
    if not predicted:
        return 0.0
    return max(_token_f1(predicted, _squad_tokens(gold)) for gold in answers)


# --------------------------------------------------------------------------- 500x tokens

# A fixed list standing in for the abbreviations NLTK's downloadable English Punkt model
# knows, so that "Mr. Smith" is not split into two sentences.
_ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof sr jr st mt ft vs etc e.g i.e u.s u.k inc ltd co corp no fig figs "  # noqa: SIM905
    "eq eqs al approx dept est jan feb mar apr jun jul aug sep sept oct nov dec".split()
)


@cache
def _sentence_splitter() -> PunktSentenceTokenizer:
    from nltk.tokenize.punkt import PunktParameters, PunktSentenceTokenizer

    params = PunktParameters()
    params.abbrev_types = set(_ABBREVIATIONS)
    return PunktSentenceTokenizer(params)


@cache
def _word_tokenizer() -> NLTKWordTokenizer:
    from nltk.tokenize.destructive import NLTKWordTokenizer

    return NLTKWordTokenizer()


_SENTENCE_ENDS = frozenset(".?!")


@lru_cache(maxsize=_CACHE_SIZE)
def _word_tokens_500x(text: str) -> tuple[str, ...]:
    words = _word_tokenizer()
    if _SENTENCE_ENDS.isdisjoint(text):  # Punkt only splits after . ? !
        return tuple(words.tokenize(text))
    return tuple(
        word for sentence in _sentence_splitter().tokenize(text)
        for word in words.tokenize(sentence)
    )


def word_tokenize_500x(text: str) -> list[str]:
    """Word tokens as ``nltk.word_tokenize`` makes them, without downloading Punkt data.

    ``nltk.word_tokenize`` splits sentences with the downloadable English Punkt model, then
    tokenises each sentence with ``NLTKWordTokenizer`` (Treebank rules). Here the sentence
    splitter is NLTK's ``PunktSentenceTokenizer`` with default parameters plus a fixed list of
    common abbreviations (``mr``, ``dr``, ``e.g``, ``etc``, month names, ...). Tokens are
    identical whenever both splitters agree on sentence ends, which they do on ordinary
    prose; they can differ after rare abbreviations the English model learned.
    """
    return list(_word_tokens_500x(text))


# --------------------------------------------------------------------------- 500x Rouge-L


def _rouge_sentences(text: str) -> list[str]:
    # The ``rouge`` package: split on ".", drop empty pieces, collapse inner whitespace.
    return [" ".join(piece.split()) for piece in text.split(".") if len(piece) > 0]


def _lcs_words(x: Sequence[str], y: Sequence[str]) -> list[str]:
    """The words of one longest common subsequence, reconstructed as ``rouge`` does."""
    n, m = len(x), len(y)
    table = [[0] * (m + 1)]
    for i in range(1, n + 1):
        xi, above, row = x[i - 1], table[i - 1], [0] * (m + 1)
        for j in range(1, m + 1):
            if xi == y[j - 1]:
                row[j] = above[j - 1] + 1
            else:
                row[j] = above[j] if above[j] > row[j - 1] else row[j - 1]
        table.append(row)
    words: list[str] = []
    i, j = n, m
    while i > 0 and j > 0:
        if x[i - 1] == y[j - 1]:
            words.append(x[i - 1])
            i, j = i - 1, j - 1
        elif table[i - 1][j] > table[i][j - 1]:
            i -= 1
        else:
            j -= 1
    return words


def _rouge_l_500x_or_none(prediction: str, reference: str) -> float | None:
    hyp, ref = _rouge_sentences(prediction), _rouge_sentences(reference)
    if not hyp or not ref:
        return None
    hyp_words = [sentence.split(" ") for sentence in hyp]
    ref_words = [sentence.split(" ") for sentence in ref]
    m = len({w for words in ref_words for w in words})
    n = len({w for words in hyp_words for w in words})
    union: set[str] = set()
    for r_words in ref_words:
        r_set = set(r_words)
        for h_words in hyp_words:
            if r_set.isdisjoint(h_words):
                continue
            union.update(_lcs_words(r_words, h_words))
    recall, precision = len(union) / m, len(union) / n
    return 2.0 * ((precision * recall) / (precision + recall + 1e-8))


def rouge_l_f_500x(prediction: str, reference: str) -> float:
    """Rouge-L F as the PyPI ``rouge`` package (1.0.1, ``Rouge().get_scores``) computes it.

    Both texts are stripped, split into "sentences" on every ``.`` (empty pieces dropped,
    inner whitespace collapsed) and into words on single spaces; case-sensitive, no
    stemming, punctuation other than ``.`` stays inside words. Summary-level LCS with the
    package's default ``exclusive=True``: the union of the words of one reconstructed LCS
    of every (reference sentence, prediction sentence) pair is counted as a SET, and so are
    the reference's ``m`` and the prediction's ``n`` words (repeated words count once).
    ``R = |union| / m``, ``P = |union| / n``, ``F = 2PR / (P + R + 1e-8)``.
    A prediction without any sentence (empty, whitespace, only dots) scores 0.0 where the
    package raises. Raises ``ValueError`` for such a reference.
    """
    if not _rouge_sentences(reference.strip()):
        raise InputError(f"reference has no words for Rouge-L: {reference!r}")
    score = _rouge_l_500x_or_none(prediction.strip(), reference.strip())
    return 0.0 if score is None else score


# --------------------------------------------------------------------------- 500x QA


def _qa_500x(prediction: str, answers: Sequence[str]) -> tuple[float, float]:
    _check_answers(answers)
    candidate = prediction.strip()
    if not candidate:
        return 0.0, 0.0
    chosen: str | None = None
    best = -1.0
    for gold in answers:
        reference = gold.strip()
        score = _rouge_l_500x_or_none(candidate, reference) if reference else None
        if score is not None and score > best:
            chosen, best = reference, score
    if chosen is None:
        return 0.0, 0.0
    exact = float(candidate == chosen)
    f1 = _token_f1(_word_tokens_500x(candidate), _word_tokens_500x(chosen))
    return exact, f1


def exact_match_500x(prediction: str, answers: Sequence[str]) -> float:
    """Exact match as 500xCompressor's ``evaluate_2.py`` computes it (case-sensitive).

    The prediction and the golds are stripped of surrounding whitespace. The gold used is
    the first one with the highest :func:`rouge_l_f_500x` against the prediction (golds
    whose Rouge-L is undefined - no words - are skipped); the score is 1.0 if the stripped
    prediction equals that gold exactly, else 0.0. So this is NOT a max over the golds.
    An empty prediction, or one with no scorable gold, scores 0.0 (the script dropped it).
    """
    return _qa_500x(prediction, answers)[0]


def f1_500x(prediction: str, answers: Sequence[str]) -> float:
    """Token F1 as 500xCompressor's ``evaluate_2.py`` computes it.

    Gold chosen as in :func:`exact_match_500x`; tokens are :func:`word_tokenize_500x` of the
    stripped texts, case-sensitive and not normalised (punctuation tokens count); F1 of the
    multiset overlap. An empty prediction scores 0.0 (the script dropped it).
    """
    return _qa_500x(prediction, answers)[1]


# --------------------------------------------------------------------------- regeneration

@cache
def _rouge_scorer() -> Any:
    from rouge_score.rouge_scorer import RougeScorer

    return RougeScorer(["rougeL"], use_stemmer=False)


@cache
def _sacrebleu() -> Any:
    from sacrebleu.metrics.bleu import BLEU

    return BLEU(tokenize="13a", smooth_method="exp", effective_order=True)


def _check_reference(reference: str) -> None:
    if not reference.strip():
        raise InputError("reference text is empty")


def rouge_l_f(prediction: str, reference: str) -> float:
    """Rouge-L F-measure of Google's ``rouge_score`` (``rougeL``, ``use_stemmer=False``).

    Sentence-level LCS over ``rouge_score``'s default tokens: lower-cased, every run of
    characters outside ``[a-z0-9]`` replaced by a space, so accents and non-Latin scripts
    are dropped. 0.0 for an empty prediction; ``ValueError`` for an empty reference.
    """
    _check_reference(reference)
    if not prediction.strip():
        return 0.0
    return float(_rouge_scorer().score(reference, prediction)["rougeL"].fmeasure)


def bleu(prediction: str, reference: str) -> float:
    """sacrebleu sentence BLEU / 100: tokenizer ``13a``, ``exp`` smoothing, effective order.

    Signature ``nrefs:1|case:mixed|eff:yes|tok:13a|smooth:exp``. 0.0 for an empty
    prediction; ``ValueError`` for an empty reference.
    """
    _check_reference(reference)
    if not prediction.strip():
        return 0.0
    return float(_sacrebleu().sentence_score(prediction, [reference]).score) / 100.0


def bleu_500x(prediction: str, reference: str) -> float:
    """NLTK ``sentence_bleu`` as 500xCompressor computes it.

    ``sentence_bleu([ref_tokens], hyp_tokens, smoothing_function=SmoothingFunction().method1)``
    with uniform 4-gram weights, tokens from :func:`word_tokenize_500x` of the stripped
    texts (case-sensitive). 0.0 for an empty prediction; ``ValueError`` for an empty
    reference.
    """
    _check_reference(reference)
    hypothesis = _word_tokens_500x(prediction.strip())
    if not hypothesis:
        return 0.0
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

    reference_tokens = list(_word_tokens_500x(reference.strip()))
    smoothing = SmoothingFunction().method1
    return float(sentence_bleu([reference_tokens], list(hypothesis), smoothing_function=smoothing))


# --------------------------------------------------------------------------- batches


def qa_scores(prediction: str, answers: Sequence[str]) -> dict[str, float]:
    """All four QA metrics of one prediction, keyed by metric name."""
    exact, f1 = _qa_500x(prediction, answers)
    squad_exact, squad_f1_value = squad_scores(prediction, answers)
    return {
        "squad_exact_match": squad_exact,
        "squad_f1": squad_f1_value,
        "exact_match_500x": exact,
        "f1_500x": f1,
    }


def regeneration_scores(prediction: str, reference: str) -> dict[str, float]:
    """All four regeneration metrics of one prediction, keyed by metric name."""
    return {
        "rouge_l_f": rouge_l_f(prediction, reference),
        "bleu": bleu(prediction, reference),
        "rouge_l_f_500x": rouge_l_f_500x(prediction, reference),
        "bleu_500x": bleu_500x(prediction, reference),
    }


def _check_lengths(predictions: Sequence[str], golds: Sequence[object]) -> None:
    if len(predictions) != len(golds):
        raise InputError(f"{len(predictions)} predictions but {len(golds)} gold entries")


def batch_squad_scores(
    predictions: Sequence[str], answers_lists: Sequence[Sequence[str]]
) -> dict[str, list[float]]:
    """``squad_exact_match`` and ``squad_f1`` per pair (same order as the inputs)."""
    _check_lengths(predictions, answers_lists)
    pairs = [squad_scores(p, a) for p, a in zip(predictions, answers_lists, strict=True)]
    return {"squad_exact_match": [e for e, _ in pairs], "squad_f1": [f for _, f in pairs]}


def batch_qa_500x_scores(
    predictions: Sequence[str], answers_lists: Sequence[Sequence[str]]
) -> dict[str, list[float]]:
    """``exact_match_500x`` and ``f1_500x`` per pair (same order as the inputs)."""
    _check_lengths(predictions, answers_lists)
    pairs = [_qa_500x(p, a) for p, a in zip(predictions, answers_lists, strict=True)]
    return {"exact_match_500x": [e for e, _ in pairs], "f1_500x": [f for _, f in pairs]}


def batch_regeneration_scores(
    predictions: Sequence[str], references: Sequence[str]
) -> dict[str, list[float]]:
    """The four regeneration metrics per pair (same order as the inputs)."""
    _check_lengths(predictions, references)
    rows = [regeneration_scores(p, r) for p, r in zip(predictions, references, strict=True)]
    return {name: [row[name] for row in rows] for name in REGENERATION_METRICS}
