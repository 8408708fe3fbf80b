"""Each metric pinned on tiny hand-made cases."""

from __future__ import annotations

import math

import pytest

from assistant.evaluation import metrics as m
from assistant.schema import Passage

RANKED = ["a", "b", "c", "d", "e"]


@pytest.mark.parametrize(
    ("relevant", "ranked", "k", "expected"),
    [
        ({"a"}, RANKED, 1, 1.0),
        ({"b"}, RANKED, 1, 0.0),
        ({"b"}, RANKED, 2, 1.0),
        ({"c", "z"}, RANKED, 3, 1.0),
        ({"e"}, RANKED, 3, 0.0),
        ({"e"}, RANKED, 10, 1.0),  # k beyond the list
        ({"z"}, RANKED, 5, 0.0),
        (set(), RANKED, 5, 0.0),
        ({"a"}, [], 3, 0.0),
    ],
)
def test_hit_at_k(relevant, ranked, k, expected):
    assert m.hit_at_k(relevant, ranked, k) == expected


@pytest.mark.parametrize(
    ("relevant", "ranked", "k", "expected"),
    [
        ({"a"}, RANKED, 10, 1.0),
        ({"b"}, RANKED, 10, 0.5),
        ({"c", "d"}, RANKED, 10, 1 / 3),  # the first relevant counts, not the best or the mean
        ({"d", "c"}, RANKED, 10, 1 / 3),
        ({"e"}, RANKED, 4, 0.0),  # ranked below k
        ({"e"}, RANKED, 5, 0.2),
        ({"z"}, RANKED, 10, 0.0),
        ({"a"}, [], 10, 0.0),
    ],
)
def test_mrr_at_k(relevant, ranked, k, expected):
    assert m.mrr_at_k(relevant, ranked, k) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("relevant", "ranked", "k", "expected"),
    [
        ({"a", "c"}, RANKED, 2, 0.5),
        ({"a", "b"}, RANKED, 2, 1.0),
        ({"a", "c"}, RANKED, 4, 0.5),
        ({"a"}, ["a", "b"], 5, 0.5),  # fewer ranked than k: share of those ranked
        ({"z"}, RANKED, 3, 0.0),
    ],
)
def test_precision_at_k(relevant, ranked, k, expected):
    assert m.precision_at_k(relevant, ranked, k) == pytest.approx(expected)


def test_precision_at_k_is_nan_with_nothing_ranked():
    assert math.isnan(m.precision_at_k({"a"}, [], 3))


@pytest.mark.parametrize("metric", [m.hit_at_k, m.mrr_at_k, m.precision_at_k])
@pytest.mark.parametrize("k", [0, -1])
def test_ranking_metrics_reject_bad_k(metric, k):
    with pytest.raises(ValueError, match=f"k must be > 0, got {k}"):
        metric({"a"}, RANKED, k)


@pytest.mark.parametrize(
    ("relevant", "ranked", "expected"),
    [({"a"}, RANKED, 1), ({"d", "c"}, RANKED, 3), ({"z"}, RANKED, None), ({"a"}, [], None)],
)
def test_first_relevant_rank(relevant, ranked, expected):
    assert m.first_relevant_rank(relevant, ranked) == expected


@pytest.mark.parametrize(
    ("relevant", "cited", "expected"),
    [
        ({"a"}, ["a"], 1.0),
        ({"a"}, ["a", "b"], 0.5),
        ({"a", "b"}, ["c"], 0.0),
        ({"a", "b", "c"}, ["a", "b", "x"], 2 / 3),
    ],
)
def test_citation_precision(relevant, cited, expected):
    assert m.citation_precision(relevant, cited) == pytest.approx(expected)


def test_citation_precision_is_undefined_without_citations():
    assert math.isnan(m.citation_precision({"a"}, []))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("  Hello\n\tWORLD  ", "hello world"),
        ("We aren\u2019t open", "we aren't open"),
        ("5\u201320 hours", "5-20 hours"),
        ("256\u00a0bit", "256 bit"),
        ("\uff21\uff22", "ab"),  # full-width letters (NFKC)
        ("STRASSE Stra\u00dfe", "strasse strasse"),  # casefold, not lower
    ],
)
def test_normalize_text(text, expected):
    assert m.normalize_text(text) == expected


@pytest.mark.parametrize(
    ("text", "fact", "expected"),
    [
        ("Reply within 5-20 hours!", "5-20 HOURS", True),
        ("Reply within 5-20\n  hours", "5-20 hours", True),
        ("Reply within 5 - 20 hours", "5-20 hours", False),  # only whitespace runs are normalised
        ("We accept PayPal.", "paypal", True),
        ("We accept PayPal.", "visa", False),
        ("If we aren\u2019t available", "aren't available", True),
    ],
)
def test_contains_fact(text, fact, expected):
    assert m.contains_fact(text, fact) is expected


def test_missing_facts_keeps_order_and_lists_only_missing():
    text = "Orders ship within 2 working days. We accept Visa."
    assert m.missing_facts(text, ["cash", "2 working days", "PayPal", "visa"]) == ["cash", "PayPal"]
    assert m.missing_facts(text, []) == []


P1 = Passage(id="faq:shipping-1", doc_id="faq", title="Shipping", text="All orders ship within 2 working days.", source="faq.txt", line=3)
P2 = Passage(id="other:returns-1", doc_id="other", title="Returns", text="Return within 30 days for a refund.", source="other.txt", line=1)


@pytest.mark.parametrize(
    ("passage", "relevant_ids", "must_include", "expected"),
    [
        (P1, ["faq:shipping-1"], [], True),  # by passage id
        (P1, ["faq"], [], True),  # by document id
        (P2, ["faq"], [], False),
        (P2, ["faq:shipping-1"], ["30 days"], False),  # ids given: facts do not decide relevance
        (P2, [], ["30 days", "REFUND"], True),  # facts only: all must be in the passage
        (P2, [], ["30 days", "store credit"], False),
        (P1, [], [], False),
    ],
)
def test_passage_is_relevant(passage, relevant_ids, must_include, expected):
    assert m.passage_is_relevant(passage, relevant_ids, must_include) is expected


@pytest.mark.parametrize(
    ("answerable", "answered", "facts_missing", "cites_relevant", "expected"),
    [
        (True, True, 0, True, True),
        (True, True, 0, None, True),  # no ids in the gold row: citations not judged
        (True, True, 1, True, False),
        (True, True, 0, False, False),
        (True, False, 0, None, False),  # over-refusal
        (False, False, 0, None, True),  # right refusal
        (False, True, 0, None, False),  # answered what the FAQ does not say
    ],
)
def test_answer_correct(answerable, answered, facts_missing, cites_relevant, expected):
    got = m.answer_correct(answerable=answerable, answered=answered, facts_missing=facts_missing, cites_relevant=cites_relevant)
    assert got is expected


# --- answer precision: is the point quoted first, and is everything quoted on point? ----------

ON_POINT = "We ship in 2 working days."
OFF_POINT = "Check out our Shipping Policy Page for more details!"
SUPPORT = "Tracking numbers are emailed."


@pytest.mark.parametrize(
    ("sentences", "facts", "expected"),
    [
        ([ON_POINT, OFF_POINT], ["2 working days"], 1.0),
        ([OFF_POINT, ON_POINT], ["2 working days"], 0.0),  # the fact is quoted, but not first
        ([ON_POINT], ["3 days", "2  WORKING days"], 1.0),  # any one fact, matched like contains_fact
        ([SUPPORT, ON_POINT], ["2 working days"], 0.0),  # a support sentence does not count as the lead
        ([], ["2 working days"], math.nan),  # nothing quoted: not judged
        ([ON_POINT], [], math.nan),  # no facts: not judged
    ],
)
def test_lead_hit(sentences, facts, expected):
    got = m.lead_hit(sentences, facts)
    assert (math.isnan(got) and math.isnan(expected)) or got == expected


@pytest.mark.parametrize(
    ("sentences", "facts", "support", "on_point", "precision"),
    [
        ([ON_POINT, OFF_POINT], ["2 working days"], (), 1, 0.5),
        ([ON_POINT, SUPPORT, OFF_POINT], ["2 working days"], [SUPPORT], 2, 2 / 3),
        ([ON_POINT, SUPPORT], ["2 working days"], ["tracking numbers are  EMAILED"], 2, 1.0),
        ([OFF_POINT, SUPPORT], ["2 working days"], (), 0, 0.0),
        ([ON_POINT, "Orders ship in 2 working days too."], ["2 working days"], (), 2, 1.0),  # one fact, two sentences
        ([], ["2 working days"], (), 0, math.nan),
        ([ON_POINT], [], (), 0, math.nan),  # no facts: precision not judged (support alone is not the answer)
    ],
)
def test_on_point_sentences_and_precision(sentences, facts, support, on_point, precision):
    if facts:
        assert m.on_point_sentences(sentences, facts, support) == on_point
    got = m.sentence_precision(sentences, facts, support)
    assert (math.isnan(got) and math.isnan(precision)) or got == pytest.approx(precision)
