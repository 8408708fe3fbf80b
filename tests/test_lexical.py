"""Unit tests for assistant/core/lexical.py: BM25 scores, coverage and lexical strength."""

from __future__ import annotations

import math

import numpy as np
import pytest

from assistant.core.lexical import STOPWORDS, LexicalIndex
from assistant.schema import Passage

PASSAGES = [
    Passage("t:shipping-1", "t", "Shipping", "All orders ship within 2 working days.", "t.txt", 3),
    Passage("t:returns-1", "t", "Returns", "You can return items within 30 days for a refund.", "t.txt", 7),
    Passage("t:payment-1", "t", "Payment", "We accept Visa and PayPal.", "t.txt", 11),
    # a passage whose title is its document id: the title is not indexed
    Passage("faqdoc", "faqdoc", "faqdoc", "Amazon Pay is not accepted.", "f.txt", 1),
]


@pytest.fixture(scope="module")
def lexical() -> LexicalIndex:
    return LexicalIndex(PASSAGES)


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("How do I return my ordered items?", ["return", "order", "item"]),
        ("Can you please tell me", []),  # stop words only
        ("PayPal, Visa & AMAZON pay", ["paypal", "visa", "amazon", "pay"]),
        ("a I 2 x", []),  # one-character tokens are dropped
        ("30 days", ["30", "day"]),
    ],
)
def test_tokenize_drops_stopwords_and_stems(lexical, text, tokens):
    assert lexical.tokenize(text) == tokens


def test_stopwords_hold_fillers_not_policy_words():
    assert {"please", "what", "how", "you"} <= STOPWORDS
    assert not {"refund", "return", "ship", "cancel"} & STOPWORDS


def test_vocabulary_is_title_and_text_except_a_title_equal_to_the_doc_id(lexical):
    assert {"ship", "payment", "return", "amazon"} <= lexical.vocabulary  # "payment": from a title only
    assert "faqdoc" not in lexical.vocabulary
    assert lexical.passage_terms[3] == {"amazon", "pay", "accept"}
    assert lexical.n == 4


def test_scores_rank_the_matching_passage_first(lexical):
    scores = lexical.scores("How do I return items?")
    assert scores.shape == (4,) and scores.dtype == np.float32
    assert int(scores.argmax()) == 1
    assert scores[1] > 0 and scores[[0, 2, 3]].tolist() == [0.0, 0.0, 0.0]


@pytest.mark.parametrize("question", ["what is it", "", "?!", "weather in London"])
def test_scores_are_zero_without_a_matching_term(lexical, question):
    assert lexical.scores(question).tolist() == [0.0, 0.0, 0.0, 0.0]


@pytest.mark.parametrize(
    ("question", "passage", "expected"),
    [
        ("return items in London", None, 2 / 3),  # 'london' is not in the corpus
        ("return items in London", 1, 2 / 3),
        ("return items in London", 0, 0.0),
        ("accept Visa", 2, 1.0),
        ("accept Visa", 3, 0.5),
        ("what is it", None, 1.0),  # no content terms: nothing counts against it
        ("what is it", 0, 1.0),
        ("weather forecast", None, 0.0),
    ],
)
def test_coverage(lexical, question, passage, expected):
    assert lexical.coverage(question, passage) == pytest.approx(expected)


def test_idf_is_bm25_plus_one_smoothing(lexical):
    n = 4
    assert lexical.idf["accept"] == pytest.approx(math.log(1 + (n - 2 + 0.5) / (2 + 0.5)))  # in 2 passages
    assert lexical.idf["refund"] == pytest.approx(math.log(1 + (n - 1 + 0.5) / (1 + 0.5)))
    assert lexical.max_idf == pytest.approx(math.log(1 + (n + 0.5) / 0.5))


@pytest.mark.parametrize(
    ("question", "passage", "expected"),
    [
        ("amazon pay", 3, 1.0),  # every rare term in the passage
        ("amazon pay", 0, 0.0),
        ("what", 1, 0.0),  # no content terms
        # 'london' is unknown to the corpus: it counts with the highest idf
        ("return items London", 1, (2 * math.log(1 + 3.5 / 1.5)) / (2 * math.log(1 + 3.5 / 1.5) + math.log(1 + 4.5 / 0.5))),
        # 'accept' is common (2 passages), 'visa' rare: the share is idf-weighted
        ("accept visa", 3, math.log(1 + 2.5 / 2.5) / (math.log(1 + 2.5 / 2.5) + math.log(1 + 3.5 / 1.5))),
    ],
)
def test_strength_is_the_idf_share_of_query_terms_in_the_passage(lexical, question, passage, expected):
    assert lexical.strength(question, passage) == pytest.approx(expected)


def test_bm25_parameters_change_the_scores():
    default = LexicalIndex(PASSAGES).scores("return items within days")
    flat = LexicalIndex(PASSAGES, k1=0.5, b=0.0).scores("return items within days")
    assert int(default.argmax()) == int(flat.argmax()) == 1
    assert not np.allclose(default, flat)
