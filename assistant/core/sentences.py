"""Split passage text into sentences as (start, end) spans, so quotes stay verbatim."""

from __future__ import annotations

import re

# A sentence ends at . ! ? (possibly repeated, possibly followed by a closing quote or bracket)
# when the next non-space character starts a new sentence, or at a line break. Scraped text
# often lacks the space ("location.For Europe"), so a lowercase word directly followed by
# ".Capital" also splits.
_END = re.compile(
    r"""(?:[.!?]+['"’”)\]]*(?=\s+[\W\d]*[A-Z0-9•(\"'“‘])"""  # end punctuation, then space, then a new sentence
    r"""|(?<=[a-z]{2})[.!?]+(?=[A-Z][a-z])"""  # "location.For"
    r"""|\n+)"""  # hard line breaks (bullets, scraped lines)
)
_ABBREV = re.compile(r"(?:\b(?:e\.g|i\.e|etc|vs|approx|no|dr|mr|mrs|ms|st|inc|ltd|co|jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec)|\b[A-Z])\.$", re.I)
_BULLET = re.compile(r"^\s*(?:[•·▪◦‣●○\-\*\+]|\d{1,2}[.)])\s*")
MIN_CHARS = 3
MERGE_BELOW = 12


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Return (start, end) offsets of the sentences of ``text``; ``text[start:end]`` is stripped."""
    spans: list[tuple[int, int]] = []
    start = 0
    for m in _END.finditer(text):
        end = m.end() if m.group(0)[0] in ".!?" else m.start()
        if m.group(0)[0] in ".!?" and _ABBREV.search(text[start : m.start() + 1]) and "\n" not in m.group(0):
            continue  # "e.g." or an initial: not a sentence end
        _add(text, start, end, spans)
        start = m.end()
    _add(text, start, len(text), spans)
    # A fragment like "Yes!" carries no policy on its own: join it to the sentence after it.
    merged: list[tuple[int, int]] = []
    carry: int | None = None
    for s, e in spans:
        if carry is not None:
            s, carry = carry, None
        if e - s < MERGE_BELOW and len(text[s:e].split()) <= 2 and "\n" not in text[s:e]:
            carry = s
            continue
        merged.append((s, e))
    if carry is not None:
        if merged:
            merged[-1] = (merged[-1][0], spans[-1][1])
        else:
            merged.append((carry, spans[-1][1]))
    return merged


def _add(text: str, start: int, end: int, spans: list[tuple[int, int]]) -> None:
    chunk = text[start:end]
    lead = len(chunk) - len(chunk.lstrip())
    start += lead
    # Drop a leading bullet glyph so the quote reads as a sentence (still a verbatim substring).
    m = _BULLET.match(text[start:end])
    if m and m.end() < end - start:
        start += m.end()
    end = start + len(text[start:end].rstrip())
    if end - start >= MIN_CHARS and re.search(r"\w", text[start:end]):
        spans.append((start, end))


def split_sentences(text: str) -> list[str]:
    return [text[s:e] for s, e in sentence_spans(text)]


def one_line(text: str) -> str:
    """A quoted sentence inside the joined answer line: verbatim, its line breaks become spaces."""
    return " ".join(text.split())
