"""What each passage is embedded as: its *units* (searched) and its *quotes* (not searched).

A unit is a piece of a passage with its own vector: an FAQ row's question (``title``), the
question + answer or section title + text (``full``), each sentence of a plain-text section
(``sentence``, title-prefixed) and each confirmed customer question linked to the passage
(``learned``; assistant/learning/links.py). Quotes are the sentences of the passages whose
sentences are not units (FAQ answers): the answer builder reads their vectors to choose what
to quote. assistant/index/store.py embeds, saves and loads both.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from assistant.core.sentences import sentence_spans
from assistant.schema import Passage

UNIT_KINDS = ("title", "full", "sentence", "learned")
LEARNED_KIND = UNIT_KINDS.index("learned")
HASH_BYTES = 16


@dataclass(frozen=True)
class Unit:
    """One embedded piece of a passage: its kind and character span inside passage.text."""

    passage: int  # index into Index.passages
    kind: str  # "title" | "full" | "sentence" | "learned"
    start: int = 0  # for "learned": the key's position in the manifest's ``learned`` list
    end: int = 0


class UnitTable(Sequence):
    """The units of an index as one int32 array (passage, kind, start, end); rows read as Unit."""

    def __init__(self, table: np.ndarray) -> None:
        self.table = np.ascontiguousarray(table, dtype=np.int32).reshape(-1, 4)

    @classmethod
    def from_units(cls, units: list[Unit]) -> "UnitTable":
        rows = [(u.passage, UNIT_KINDS.index(u.kind), u.start, u.end) for u in units]
        return cls(np.array(rows, dtype=np.int32).reshape(-1, 4))

    def __len__(self) -> int:
        return len(self.table)

    def __getitem__(self, j):
        if isinstance(j, slice):
            return [self[i] for i in range(*j.indices(len(self)))]
        p, k, s, e = self.table[j].tolist()
        return Unit(p, UNIT_KINDS[k], s, e)


def unit_text(p: Passage, u: Unit, learned: Sequence[Sequence[str]] = ()) -> str:
    """The text a unit embeds; ``learned``: the index's (passage id, question) keys."""
    if u.kind == "learned":
        return learned[u.start][1]
    if u.kind == "title":
        return p.title
    if u.kind == "full":
        return f"{p.title}\n{p.text}" if p.title and p.title != p.doc_id else p.text
    sentence = p.text[u.start : u.end]
    return f"{p.title}: {sentence}" if p.kind == "section" and p.title != p.doc_id else sentence


def make_units(passages: list[Passage], learned: Sequence[Sequence[str]] = ()) -> list[Unit]:
    """Every unit, grouped by passage in passage order; ``learned`` keys ((passage id, question),
    ordered by passage) come after their passage's own units."""
    by_passage: dict[str, list[int]] = {}
    for k, (pid, _) in enumerate(learned):
        by_passage.setdefault(pid, []).append(k)
    units: list[Unit] = []
    for i, p in enumerate(passages):
        if p.kind == "faq" and p.title:
            units.append(Unit(i, "title"))
        units.append(Unit(i, "full"))
        # Plain-text passages often mix topics (a run of bullets), so each sentence is
        # indexed too. FAQ rows are matched on their question; their (often long) answers'
        # sentences are embedded lazily, only when a passage is quoted (Retriever.sentence_scores).
        if p.kind == "section":
            for s, e in sentence_spans(p.text):
                units.append(Unit(i, "sentence", s, e))
        units.extend(Unit(i, "learned", k, k) for k in by_passage.get(p.id, ()))
    return units


def make_quotes(passages: list[Passage]) -> np.ndarray:
    """(passage, start, end) of every sentence of the passages whose sentences are not units
    (FAQ answers), in passage order: what the answer builder may quote from them."""
    rows = [(i, s, e) for i, p in enumerate(passages) if p.kind != "section" for s, e in sentence_spans(p.text)]
    return np.array(rows, dtype=np.int32).reshape(-1, 3)


def text_hash(text: str) -> bytes:
    """The embedding-cache key of a unit text."""
    return hashlib.blake2b(text.encode("utf-8"), digest_size=HASH_BYTES).digest()
