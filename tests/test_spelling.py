"""Unit tests for assistant/core/spelling.py: typo correction against the corpus vocabulary."""

from __future__ import annotations

import pytest

from assistant.core.spelling import TypoCorrector, model_vocabulary

CORPUS = ["Can I cancel my order", "Shipping and delivery", "International warranty", "Returns"]


@pytest.fixture
def corrector() -> TypoCorrector:
    return TypoCorrector(CORPUS, {"weather", "london"})


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("cancle", "cancel"),  # one transposition
        ("Cancle", "cancel"),  # matched case-insensitively (the correction is the corpus word)
        ("ordr", "order"),  # one deletion
        ("shiping", "shipping"),
        ("delivry", "delivery"),
        ("internatinal", "international"),  # long word: up to two edits
        ("warrenty", "warranty"),
        ("wether", "wether"),  # no corpus word within one edit ("weather" is known, not a corpus word)
        ("weather", "weather"),  # a known word is never changed
        ("shipping", "shipping"),
        ("xyzzyq", "xyzzyq"),  # nothing close
        ("cat", "cat"),  # shorter than min_len, and no swap of two letters gives a corpus word
        ("nad", "and"),  # three letters: corrected by swapping two neighbouring letters only
        ("cna", "can"),
        ("cn", "cn"),  # two letters: never
        ("cab", "cab"),  # "can" is one substitution away, not a swap
        ("retrns", "returns"),
    ],
)
def test_correct_word(corrector, word, expected):
    assert corrector.correct_word(word) == expected


@pytest.mark.parametrize(("word", "distance"), [("order", 1), ("shipping", 2), ("abcdefg", 1), ("abcdefgh", 2)])
def test_max_distance_grows_with_word_length(corrector, word, distance):
    assert corrector.max_distance(word) == distance


def test_two_edits_are_too_many_for_a_short_word(corrector):
    assert corrector.correct_word("ordxx") == "ordxx"  # "order" is two edits away, the word is short


def test_correct_replaces_only_unknown_words_and_keeps_the_rest(corrector):
    assert corrector.correct("can i cancle my ordr, shiping? weather in London") == (
        "can i cancel my order, shipping? weather in London"
    )


def test_min_len_protects_short_words():
    strict = TypoCorrector(CORPUS, set(), min_len=10)
    assert strict.correct_word("shiping") == "shiping"
    assert TypoCorrector(CORPUS, set(), min_len=4).correct_word("shiping") == "shipping"


def test_three_letter_swaps_need_one_corpus_word_and_can_be_turned_off():
    both = TypoCorrector(["abc bca"], set())
    assert both.correct_word("bac") == "bac"  # "abc" and "bca" are each one swap away: ambiguous
    assert TypoCorrector(["abc"], set()).correct_word("bac") == "abc"
    assert TypoCorrector(CORPUS, set(), swap_len=None).correct_word("nad") == "nad"
    assert TypoCorrector(CORPUS, set()).correct("can i bring my dgo") == "can i bring my dgo"  # no "dog" here


def test_corpus_words_are_lowercase_sorted_and_at_least_three_letters(corrector):
    assert corrector.corpus_words == sorted(
        ["and", "can", "cancel", "delivery", "international", "order", "returns", "shipping", "warranty"]
    )
    assert {"weather", "london", "cancel"} <= corrector.known


def test_model_vocabulary_keeps_whole_lowercase_words(tmp_path):
    (tmp_path / "vocab.txt").write_text("[CLS]\n[SEP]\nhello\n##ing\nWorld\ncat2\ncats\n!\n", encoding="utf-8")
    assert model_vocabulary(tmp_path) == {"hello", "cats"}


@pytest.mark.parametrize("make_path", [lambda tmp: None, lambda tmp: tmp, lambda tmp: tmp / "missing"])
def test_model_vocabulary_is_empty_without_a_vocab_file(tmp_path, make_path):
    assert model_vocabulary(make_path(tmp_path)) == set()


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("Which cards do you take?", "Which cards do you accept?"),  # issue 12: the policies say "accept"
        ("wat payment do u take", "wat payment do u accept"),
        ("DO YOU TAKE amex", "DO YOU ACCEPT amex"),
        ("How long will you take to process my order", "How long will you take to process my order"),  # time
        ("how many days do you take", "how many days do you take"),
        ("Do you take back returns?", "Do you take back returns?"),
        ("Can I take a test ride?", "Can I take a test ride?"),  # the customer takes, not the store
    ],
)
def test_a_store_that_takes_is_read_as_accepting(question, expected):
    assert TypoCorrector(["We accept all major cards.", "how many days"], set()).correct(question) == expected
    # A corpus that never says "accept" keeps the customer's word.
    assert TypoCorrector(["We take all major cards.", "how many days"], set()).correct(question) == question


# --- the store's own name ------------------------------------------------------------------------
from pathlib import Path  # noqa: E402

from assistant.core.corpus import load_corpus  # noqa: E402
from assistant.core.spelling import store_name  # noqa: E402

SUITE = Path(__file__).resolve().parent.parent / "evals" / "corpora"


@pytest.mark.parametrize(
    ("corpus", "email", "name"),
    [
        ("bike-shop/speichenwerk-faq.md", "service@speichenwerk.de", "Speichenwerk"),  # "on speichenwerk.de" is an address
        ("restaurant/helpdesk-export.csv", "bookings@trattorialupo.co.uk", "Trattoria Lupo"),
        ("software-subscription/terms.txt", "support@notelyst.io", "Notelyst"),
        ("../../corpus", "support@coco-jewelry.com", None),  # named only in its email address
    ],
)
def test_the_store_name_is_the_one_its_email_domain_spells(corpus, email, name):
    texts = [f"{p.title} {p.text}" for p in load_corpus([SUITE / corpus])]
    assert store_name(texts, email) == name


def test_a_common_word_or_a_short_domain_is_not_a_store_name():
    texts = ["We sell books and maps. Books ship within 2 days."]
    assert store_name(texts, "help@books.com") is None  # "books" is written in lower case
    assert store_name(["Books ship fast."], "help@books.com", {"books"}) is None  # a word the model knows, never inside a sentence
    assert store_name(["Welcome to Abc. We ship."], "a@abc.com") is None  # too short to tell
    assert store_name(["Notelyst is an app."], None) is None


@pytest.mark.parametrize(
    ("question", "read"),
    [
        ("Does Notelyst work offline on Linux?", "Does the store work offline on Linux?"),
        ("is notelyst gdpr compliant", "is the store gdpr compliant"),
        ("Where are Notelyst's servers?", "Where are the store's servers?"),
        ("How much does Notelyst Plus cost?", "How much does Plus cost?"),  # a plan named after the store
        ("What is Notelyst?", "What is Notelyst?"),  # nothing left to ask without the name
        ("Does Notelist work offline?", "Does the store work offline?"),  # corrected to the corpus's spelling first
    ],
)
def test_the_store_name_in_a_question_is_read_as_the_store(question, read):
    corrector = TypoCorrector(["Notelyst is an app for notes. Notelyst Plus adds storage."], {"work", "offline", "is"},
                              store="Notelyst")  # fmt: skip
    assert corrector.correct(question) == read


def test_a_store_name_of_several_words_matches_however_it_is_spaced():
    corrector = TypoCorrector(["Trattoria Lupo is open Tuesday to Sunday."], set(), store="Trattoria Lupo")
    assert corrector.unnamed("Is Trattoria Lupo open on Mondays?") == "Is the store open on Mondays?"
    assert corrector.unnamed("can i bring my dog to trattoria  lupo") == "can i bring my dog to the store"
    assert corrector.unnamed("trattorialupo parking") == "the store parking"
    assert TypoCorrector(["x"], set()).unnamed("Is Trattoria Lupo open?") == "Is Trattoria Lupo open?"  # no name known
