"""Unit tests for assistant/core/sentences.py: sentence spans that keep quotes verbatim."""

from __future__ import annotations

import pytest

from assistant.core.sentences import sentence_spans, split_sentences


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("All orders ship fast. Returns are free!", ["All orders ship fast.", "Returns are free!"]),
        ("Is it free? Yes, returns cost nothing.", ["Is it free?", "Yes, returns cost nothing."]),
        # abbreviations and initials do not end a sentence
        ("Use e.g. Visa. Or PayPal works too.", ["Use e.g. Visa.", "Or PayPal works too."]),
        ("Mr. Smith will call you back soon.", ["Mr. Smith will call you back soon."]),
        ("J. R. Smith owns the store now.", ["J. R. Smith owns the store now."]),
        # scraped text without the space after the full stop
        ("Ship to the location.For Europe we use DHL.", ["Ship to the location.", "For Europe we use DHL."]),
        # a closing quote stays with its sentence
        ('He said "stop." Then he left the store.', ['He said "stop."', "Then he left the store."]),
        # line breaks split; bullet glyphs and list numbers are dropped from the quote
        ("• First item here\n• Second item here", ["First item here", "Second item here"]),
        ("1. Pack the item well\n2) Send it back to us", ["Pack the item well", "Send it back to us"]),
        # a short fragment joins the sentence after it (or the one before it, at the end)
        ("Yes! We ship to Canada today.", ["Yes! We ship to Canada today."]),
        ("We ship. Yes!", ["We ship. Yes!"]),
        ("  padded sentence here.  ", ["padded sentence here."]),
        # nothing quotable
        ("", []),
        ("Hi", []),
        ("...", []),
    ],
)
def test_split_sentences(text, expected):
    assert split_sentences(text) == expected


@pytest.mark.parametrize(
    ("text", "spans"),
    [
        ("All orders ship fast. Returns are free!", [(0, 21), (22, 39)]),
        ("  padded sentence here.  ", [(2, 23)]),
        ("• First item here\n• Second item here", [(2, 17), (20, 36)]),
        ("Ship to the location.For Europe we use DHL.", [(0, 21), (21, 43)]),
    ],
)
def test_sentence_spans_are_offsets_into_the_text(text, spans):
    assert sentence_spans(text) == spans


@pytest.mark.parametrize(
    "text",
    [
        "Orders ship in 2 days. Returns: 30 days.\n\n• Visa\n• PayPal accepted here\nEmail us at help@x.example.",
        "We accept cash (in store only). Gift cards? Yes, in 3 sizes! See our FAQ.",
        "No. 5 is our best seller; it ships in approx. 3 days.",
    ],
)
def test_every_span_is_a_stripped_verbatim_substring_in_order(text):
    spans = sentence_spans(text)
    assert spans, text
    ends = [0]
    for start, end in spans:
        piece = text[start:end]
        assert piece == piece.strip() and piece
        assert start >= ends[-1]  # in text order, never overlapping
        ends.append(end)
    assert split_sentences(text) == [text[s:e] for s, e in spans]
