"""Policy entries that say different things about the same question: near-duplicates (by the
index's embeddings) whose numbers differ or of which only one is negated.

``find_conflicts`` runs over a whole index (``assistant index`` and ``assistant lint`` report
what it finds); ``conflict_between`` is the same check on two passages, for the answer
composer, which says so when it quotes both.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from assistant.errors import ConfigError
from assistant.schema import Passage

if TYPE_CHECKING:  # annotations only: the index imports the corpus, not this module
    from assistant.index.store import Index

MIN_SIMILARITY = 0.9  # cosine of two entries' questions (FAQ) or texts (sections): the same subject
# ...and the same kind of statement: their texts share this many of their words (Jaccard), or their
# question + answer vectors are this close. Different answers to one question (StackFAQ's threads:
# 2,423 pairs of near-identical questions) stay apart: their word overlap tops out at 0.46.
MIN_OVERLAP = 0.5
MIN_TEXT_SIMILARITY = 0.95
MAX_CHECKED = 20_000  # passages; above it `assistant index` skips the pairwise check (lint still runs it)
NEGATION_RE = re.compile(
    r"\b(?:no|not|never|none|nothing|cannot|can't|don't|doesn't|won't|isn't|aren't|didn't|wasn't|unable|neither|nor)\b"
    r"|\b\w+n't\b",
    re.I,
)
YES_NO_RE = re.compile(r"^\W*(yes|no)\b", re.I)
NUMBER_RE = re.compile(r"\d+(?:[.,]\d+)*")
WORD_RE = re.compile(r"[a-z]+")


@dataclass(frozen=True)
class Conflict:
    """Two passages about the same thing that disagree, and how."""

    first: Passage
    second: Passage
    similarity: float  # cosine (index check) or word overlap (answer check) that made them a pair
    reason: str

    def describe(self) -> str:
        a, b = self.first, self.second
        return (f"{a.source}:{a.line} ({a.id}) and {b.source}:{b.line} ({b.id}) disagree: {self.reason} "
                f"[{a.title!r}]")

    def to_dict(self) -> dict:
        return {"first": self.first.id, "second": self.second.id, "first_source": f"{self.first.source}:{self.first.line}",
                "second_source": f"{self.second.source}:{self.second.line}", "title": self.first.title,
                "similarity": round(self.similarity, 4), "reason": self.reason}


def _numbers(text: str) -> set[str]:
    return {n.replace(",", "") for n in NUMBER_RE.findall(text)}


def _negated(text: str) -> bool:
    """A statement's polarity: its leading "Yes"/"No" when it has one, else whether it holds a negation."""
    lead = YES_NO_RE.match(text)
    if lead:
        return lead.group(1).lower() == "no"
    return bool(NEGATION_RE.search(text))


def _words(text: str) -> set[str]:
    return {w for w in WORD_RE.findall(NEGATION_RE.sub(" ", text.lower())) if w not in ("yes", "no")}


def overlap(a: str, b: str) -> float:
    """Jaccard overlap of two texts' words, negations, yes/no and numbers left out."""
    wa, wb = _words(a), _words(b)
    return len(wa & wb) / len(wa | wb) if wa | wb else 0.0


def disagreement(a: str, b: str) -> str | None:
    """How two statements about the same thing disagree: "numbers differ (...)", "one says no", or None."""
    na, nb = _numbers(a), _numbers(b)
    if na and nb and na != nb:
        return f"numbers differ ({', '.join(sorted(na - nb) or sorted(na))} vs {', '.join(sorted(nb - na) or sorted(nb))})"
    if _negated(a) != _negated(b):
        return "one says no, the other yes"
    return None


def conflict_between(a: Passage, b: Passage, *, min_overlap: float = MIN_OVERLAP) -> Conflict | None:
    """The conflict between two passages whose texts read as the same statement (by their words), or None."""
    if a.id == b.id:
        return None
    same = overlap(a.text, b.text)
    if same < min_overlap:
        return None
    reason = disagreement(a.text, b.text)
    return Conflict(a, b, same, reason) if reason else None


def _unit_rows(index: "Index") -> tuple[np.ndarray, np.ndarray]:
    """Per passage, the unit row of its subject (an FAQ row's question, else the full text) and of its full text."""
    kinds = index.unit_kind
    subject = np.empty(len(index.passages), dtype=np.int64)
    full = np.empty(len(index.passages), dtype=np.int64)
    for i, units in enumerate(index.passage_units):
        full_rows = [j for j in units if kinds[j] == 1]  # UNIT_KINDS: title, full, sentence
        full[i] = full_rows[0] if full_rows else units.start
        subject[i] = units.start if index.passages[i].kind == "faq" else full[i]
    return subject, full


def find_conflicts(
    index: "Index", *, min_similarity: float = MIN_SIMILARITY, block: int = 2048
) -> list[Conflict]:
    """Pairs of near-duplicate passages (subject cosine >= ``min_similarity``, texts alike) that disagree.

    Every pair is compared (block by block, so memory stays ``block`` x passages): seconds
    for 20,000 passages.
    """
    if not 0.0 < min_similarity <= 1.0:
        raise ConfigError(f"min_similarity must be in (0, 1], got {min_similarity}")
    if not index.passages:
        return []
    subject_rows, full_rows = _unit_rows(index)
    vectors = np.asarray(index.vectors[subject_rows], dtype=np.float32)
    full = np.asarray(index.vectors[full_rows], dtype=np.float32)
    found: list[Conflict] = []
    for start in range(0, len(vectors), block):
        sims = vectors[start : start + block] @ vectors.T
        for i, j in zip(*np.nonzero(sims >= min_similarity)):
            a, b = start + int(i), int(j)
            if b <= a:
                continue
            pa, pb = index.passages[a], index.passages[b]
            if float(full[a] @ full[b]) < MIN_TEXT_SIMILARITY and overlap(pa.text, pb.text) < MIN_OVERLAP:
                continue  # the same question, answered about something else
            reason = disagreement(pa.text, pb.text)
            if reason:
                found.append(Conflict(pa, pb, float(sims[i, j]), reason))
    return found
