"""The dataclasses that cross module boundaries: passages, hits, citations, answers."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class Passage:
    """One retrievable unit of policy text.

    ``id`` is deterministic (document id + section slug + position in that section for
    text files; the row id for JSONL/CSV FAQ files), so gold sets and citations can refer
    to it across rebuilds. ``text`` is the passage exactly as it stands in the source file
    (after newline normalisation), so every quoted sentence is a verbatim substring.
    """

    id: str
    doc_id: str
    title: str  # the section title (text files) or the FAQ question (JSONL/CSV)
    text: str
    source: str  # the file it came from
    line: int  # 1-based line of the passage's first line in ``source`` (row for CSV/JSONL)
    kind: str = "section"  # "section" (plain text under a heading) or "faq" (question + answer row)


@dataclass(frozen=True)
class Hit:
    """A passage with its ranking score (higher is better) and the parts it is made of.

    The retriever's score is ``dense + lexical_term``; after the verifier re-reads a hit it
    is ``verified + lexical_term``.
    """

    passage: Passage
    score: float
    dense: float = 0.0  # the retriever's (MiniLM) best cosine
    lexical: float = 0.0  # BM25 divided by the query's best BM25, in [0, 1]
    verified: float | None = None  # the verifier model's cosine, when a verifier re-read this hit
    lexical_term: float = 0.0  # what the lexical evidence added to the score (its adaptive weight * lexical)


@dataclass(frozen=True)
class Citation:
    id: str
    doc_id: str
    title: str
    text: str
    score: float

    @classmethod
    def from_hit(cls, hit: Hit) -> "Citation":
        p = hit.passage
        return cls(id=p.id, doc_id=p.doc_id, title=p.title, text=p.text, score=round(float(hit.score), 4))


@dataclass(frozen=True)
class AnswerSentence:
    """A sentence quoted verbatim from a passage, with the 1-based citation number it carries."""

    text: str
    passage_id: str
    citation: int


@dataclass(frozen=True)
class SupportContact:
    """How to reach the store's human support, as found in the corpus."""

    text: str  # e.g. "support@coco-jewelry.com"
    kind: str  # "email", "phone" or "none"
    passage_id: str | None = None
    # Every channel the corpus gives (None where it gives none), and the passages stating them.
    email: str | None = None
    phone: str | None = None
    hours: str | None = None  # when the phone line (or the store) is open, verbatim, e.g. "Monday to Friday 9:00 to 17:00"
    passage_ids: tuple[str, ...] = ()
    chat: str | None = None  # the sentence that offers a live chat, verbatim (its passage is in passage_ids)
    address: str | None = None  # the sentence stating the shop's postal address, verbatim (its passage is in passage_ids)


@dataclass(frozen=True)
class Answer:
    question: str
    answered: bool
    answer: str
    confidence: float
    citations: list[Citation] = field(default_factory=list)
    sentences: list[AnswerSentence] = field(default_factory=list)
    support_contact: SupportContact | None = None
    refusal_reason: str | None = None
    retrieved: list[Hit] = field(default_factory=list)  # ranked hits, for evaluation
    latency_ms: float = 0.0
    evidence: dict[str, float] = field(default_factory=dict)  # refusal-model features and p_answer
    # On a "not_stated" refusal: the closest passage, on the topic but not saying what was asked.
    related: list[Citation] = field(default_factory=list)
    # The standalone question actually answered: ``question`` completed from the conversation
    # (assistant/dialogue/); None means ``question`` itself.
    resolved_question: str | None = None
    # A vague message ("refund"): the topics (section titles) offered instead of a guess.
    clarify: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """The public JSON object of ``assistant ask --json`` (extend it; never rename fields)."""
        return {
            "question": self.question,
            "answered": self.answered,
            "answer": self.answer,
            "confidence": round(float(self.confidence), 4),
            "citations": [asdict(c) for c in self.citations],
            "sentences": [asdict(s) for s in self.sentences],
            "support_contact": (
                {**asdict(self.support_contact), "passage_ids": list(self.support_contact.passage_ids)}
                if self.support_contact else None
            ),
            "refusal_reason": self.refusal_reason,
            "latency_ms": round(float(self.latency_ms), 2),
            "evidence": {k: round(float(v), 4) for k, v in self.evidence.items()},
            "related": [asdict(c) for c in self.related],
            "resolved_question": self.resolved_question or self.question,
            "clarify": list(self.clarify),
        }


@dataclass(frozen=True)
class Draft:
    """A reply draft for a support agent built around an :class:`Answer`."""

    answer: Answer
    text: str
    escalate: bool
    next_steps: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        d = self.answer.to_dict()
        d.update({"draft": self.text, "escalate": self.escalate, "next_steps": list(self.next_steps)})
        return d
