"""Personal data in stored questions: emails (plain and obfuscated), IBANs, street addresses,
card and phone numbers are replaced by a placeholder before a question is written to the log."""

from __future__ import annotations

import re
import unicodedata

EMAIL_RE = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# "jane (at) example (dot) com", "jane [at] example.com", "jane at example dot com",
# "jane @ example . com": the ways people hide an address from bots. A bare " at " needs a
# "dot" word or bracket after it, so "look at me. Thanks" is left alone.
_AT_BRACKETED = r"\s*[(\[{<]\s*at\s*[)\]}>]\s*"
_DOT_WORD = r"(?:\s*[(\[{<]\s*dot\s*[)\]}>]\s*|\s+dot\s+)"
OBFUSCATED_EMAIL_RE = re.compile(
    rf"(?<![\w.+-])[\w][\w.+-]*(?:"
    rf"{_AT_BRACKETED}[\w-]+(?:(?:{_DOT_WORD}|\.)[\w-]+)+"  # bracketed at, any dots
    rf"|\s+at\s+[\w-]+(?:{_DOT_WORD}[\w-]+)+"  # the word at, dot words
    rf"|\s*@\s*[\w-]+(?:(?:{_DOT_WORD}|\s*\.\s*)[\w-]+)+"  # a spaced-out @
    rf")(?![\w-])",
    re.IGNORECASE,
)
# An IBAN: country code, check digits, then groups of four (spaced or not), 15 to 34 characters.
# Kept only when it holds at least 10 digits, so a word pair like "AB12 CDEF GHIJ" is no IBAN.
IBAN_RE = re.compile(r"(?<!\w)[a-z]{2}\d{2}(?:[ -]?[a-z0-9]{4}){2,7}(?:[ -]?[a-z0-9]{1,3})?(?!\w)", re.IGNORECASE)
# A house number, one to three name words, then a street word: "12 Baker Street", "221B Baker St.",
# "1600 pennsylvania avenue". Street words that are also common English words (Way, Place, Drive...)
# count only capitalised. The name words are never small words or quantities ("2 rings on the way").
_NAME_WORD = (
    r"(?!(?:the|a|an|on|in|at|to|of|for|and|or|my|your|our|is|are|was|by|days?|weeks?|months?|hours?|items?"
    r"|rings?|orders?|pieces?|times?)\b)[^\W\d_][\w'’-]*"
)
_STREET_ANY_CASE = (
    r"(?i:street|st\.?|road|rd\.?|avenue|ave\.?|boulevard|blvd\.?|lane|ln\.?|terrace|crescent|highway|hwy\.?"
    r"|parkway|pkwy\.?)"
)
_STREET_CAPITALISED = r"(?:Way|Place|Pl\.|Court|Ct\.?|Close|Square|Sq\.?|Drive|Dr\.?|Row|Gardens|Mews|Hill)"
ADDRESS_RE = re.compile(
    rf"(?<![\w-])\d{{1,5}}[a-zA-Z]?,?\s+(?:{_NAME_WORD}\s+){{1,3}}(?:{_STREET_ANY_CASE}|{_STREET_CAPITALISED})(?![\w])"
    # "Hauptstraße 5", "Gartenweg 12a"; "12 rue de Rivoli"
    r"|(?<!\w)[^\W\d_]+(?i:straße|strasse|str\.|weg|gasse|allee|platz)\s+\d{1,5}[a-zA-Z]?(?!\w)"
    r"|(?<![\w-])\d{1,5}(?:\s*(?:bis|ter))?,?\s+(?i:rue|chemin|impasse|all[ée]e)\s+(?:[\w'’-]+\s+){0,3}[\w’-]+",
)
# 13 to 19 digits, optionally grouped by single spaces or dashes, not starting with 0 (no card
# number does; international phone numbers such as 0033... do): the shape of every card number.
# No Luhn check on purpose: a mistyped card number is still a card number.
CARD_RE = re.compile(r"(?<![\d+-])[1-9](?:[ -]?\d){12,18}(?![\d-])")
# 7 to 15 digits (E.164 allows 15) with an optional + and the usual separators. Long order
# numbers match too: for stored questions, masking too much beats keeping a phone number.
PHONE_RE = re.compile(r"(?<![\w+])(?:\+|\(\+?)?\d(?:[ ().\-/]{0,2}\d){6,14}(?![\w])")
DATE_RE = re.compile(r"\d{4}([-/.])\d{1,2}\1\d{1,2}|\d{1,2}([-/.])\d{1,2}\2(?:\d{4}|\d{2})")


def _iban(match: re.Match) -> str:
    text = match.group(0)
    return "[iban]" if sum(c.isdigit() for c in text) >= 10 else text


def mask_pii(text: str) -> str:
    """Replace personal data with ``[email]``, ``[iban]``, ``[address]``, ``[card]``, ``[phone]``.

    The text is NFKC-normalised first, so full-width digits and signs ("４１１１", "＠") match
    like their ASCII forms. Dates (2024-05-01, 01/05/2024) are kept: they look like phone
    numbers but carry no identity.
    """
    text = unicodedata.normalize("NFKC", text)
    text = EMAIL_RE.sub("[email]", text)
    text = OBFUSCATED_EMAIL_RE.sub("[email]", text)
    text = IBAN_RE.sub(_iban, text)
    text = ADDRESS_RE.sub("[address]", text)
    text = CARD_RE.sub("[card]", text)
    return PHONE_RE.sub(lambda m: m.group(0) if DATE_RE.fullmatch(m.group(0)) else "[phone]", text)
