"""Compose an answer from retrieved passages: verbatim sentences with citation markers, or a refusal.

Nothing here generates text: an answer is made only of sentences quoted from the passages
plus the fixed wording in this module, so it cannot invent policy.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from assistant.core.consistency import conflict_between
from assistant.core.refusal import DEFAULT_THRESHOLD
from assistant.schema import Answer, AnswerSentence, Citation, Hit, Passage, SupportContact

EMAIL_RE = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
PHONE_RE = re.compile(r"(?<![\w.])\+?\d[\d ()./-]{7,}\d(?![\w.])")
# Sentences that lean on the one before them ("These fees ...") are quoted with it.
ANAPHORA_RE = re.compile(r"^(?:these|this|that|those|it|they|such|however|and|but|also|otherwise)\b", re.I)
REFUSAL_TEXT = "I couldn't find this in the store's policies, so I won't guess."
INSTRUCTION_TEXT = "I can only answer questions about the store's policies, so I can't do that."


@dataclass(frozen=True)
class AnswerConfig:
    """How an answer picks what to quote (cosine scale of the retriever).

    Whether to answer at all is the refusal model's decision (assistant/core/refusal.py).
    """

    part_min_dense: float = DEFAULT_THRESHOLD  # a part's best passage joins the quotable ones from this cosine
    passage_margin: float = 0.06  # other passages within this of the best may be quoted
    max_passages: int = 3
    sentence_margin: float = 0.35  # sentences within this of the best sentence are quoted
    max_sentences: int = 4
    min_sentence_score: float = 0.2


def find_support_contact(passages: list[Passage]) -> SupportContact:
    """The store's human support contact as the corpus states it: its most-cited email, else a phone."""
    emails: Counter[str] = Counter()
    first: dict[str, str] = {}
    for p in passages:
        for e in EMAIL_RE.findall(p.text):
            e = e.rstrip(".")
            emails[e] += 1
            first.setdefault(e, p.id)
    if emails:
        # Prefer addresses that look like support addresses, then the most frequent.
        best = max(emails, key=lambda e: (any(w in e.lower() for w in ("support", "help", "service", "care")), emails[e]))
        return SupportContact(text=best, kind="email", passage_id=first[best])
    for p in passages:
        if re.search(r"contact|call|phone|support", p.text, re.I):
            m = PHONE_RE.search(p.text)
            if m:
                return SupportContact(text=m.group(0).strip(), kind="phone", passage_id=p.id)
    return SupportContact(text="the store's customer support team", kind="none", passage_id=None)


def refusal_message(contact: SupportContact) -> str:
    if contact.kind == "email":
        return f"Please contact the store's support team at {contact.text}."
    if contact.kind == "phone":
        return f"Please contact the store's support team at {contact.text}."
    return "Please contact the store's customer support team."


def refuse(
    question: str, contact: SupportContact, *, confidence: float, reason: str, hits: list[Hit], evidence: dict | None = None
) -> Answer:
    lead = INSTRUCTION_TEXT if reason == "instruction" else REFUSAL_TEXT
    return Answer(
        question=question,
        answered=False,
        answer=f"{lead} {refusal_message(contact)}",
        confidence=confidence,
        citations=[],
        support_contact=contact,
        refusal_reason=reason,
        retrieved=hits,
        evidence=evidence or {},
    )


PART_SPLIT_RE = re.compile(r"\?\s+|[;:]\s+|,?\s+(?:and|also|plus)\s+(?=(?:do|does|did|is|are|can|could|will|would|how|what|when|where|who|why|which|if|should|i|my|you|your)\b)", re.I)


def split_question(question: str) -> list[str]:
    """Split a multi-part question ("Can I cancel and will I get a refund?") into its parts.

    Returns ``[question]`` when it has one part. A part must have at least three words.
    """
    parts = [p.strip(" ,?") for p in PART_SPLIT_RE.split(question)]
    parts = [p for p in parts if len(p.split()) >= 3]
    return parts if len(parts) > 1 else [question]


def select_sentences(
    candidates: list[Hit],
    scores: dict[str, list[tuple[int, int, float]]],
    cfg: AnswerConfig,
    part_scores: list[dict[str, list[tuple[int, int, float]]]] = (),
) -> list[tuple[Hit, int, int]]:
    """Choose the sentences that answer the question.

    ``scores`` maps each candidate passage id to its sentences' (start, end, score) for the
    whole question; ``part_scores`` holds the same for each part of a multi-part question.
    The best sentence is always kept; others join when they score within ``sentence_margin``
    of it; each part contributes its own best sentence. A sentence that starts with an
    anaphor ("These fees ...") brings the one before it. Returns (hit, start, end) in
    passage rank order, then text order.
    """
    rank_of = {h.passage.id: r for r, h in enumerate(candidates)}

    def flat(table):
        return [(sc, -rank_of[pid], s, e) for pid, sents in table.items() if pid in rank_of for s, e, sc in sents]

    scored = flat(scores)
    if not scored:
        return []
    best = max(scored)[0]
    floor = max(best - cfg.sentence_margin, cfg.min_sentence_score)
    chosen = sorted((x for x in scored if x[0] >= floor), reverse=True)[: cfg.max_sentences] or [max(scored)]
    picked: set[tuple[int, int, int]] = {(-nr, s, e) for _, nr, s, e in chosen}
    for table in part_scores:
        part = flat(table)
        if part:
            _, nr, s, e = max(part)
            picked.add((-nr, s, e))
    for rank, s, e in list(picked):
        hit = candidates[rank]
        if ANAPHORA_RE.match(hit.passage.text[s:e]):
            prev = [x for x in scores.get(hit.passage.id, []) if x[1] <= s]
            if prev:
                ps, pe, _ = max(prev, key=lambda x: x[0])
                picked.add((rank, ps, pe))
    return [(candidates[rank], s, e) for rank, s, e in sorted(picked)]


def compose(
    question: str,
    hits: list[Hit],
    candidates: list[Hit],
    sentence_scores: dict[str, list[tuple[int, int, float]]],
    contact: SupportContact,
    cfg: AnswerConfig,
    p_answer: float,
    part_scores: list[dict[str, list[tuple[int, int, float]]]] = (),
    evidence: dict[str, float] | None = None,
) -> Answer:
    """Build the answer for ``question`` from ranked ``hits`` (or refuse).

    Args:
        candidates: the passages answers may quote from (best first).
        sentence_scores: for each candidate passage id, its sentences' (start, end, score).
        part_scores: the same per part of a multi-part question.
        p_answer: the refusal model's probability that the question is answerable
            (answer when >= 0.5).
        evidence: the features behind ``p_answer``, reported with the answer.
    """
    evidence = dict(evidence or {})
    if not hits:
        return refuse(question, contact, confidence=1.0, reason="no_match", hits=hits, evidence=evidence)
    conf = p_answer
    evidence["p_answer"] = round(float(conf), 4)
    if conf < 0.5 or not candidates:
        return refuse(question, contact, confidence=1.0 - conf, reason="not_covered", hits=hits, evidence=evidence)
    chosen = select_sentences(candidates, sentence_scores, cfg, part_scores)
    if not chosen:  # a passage with no sentence spans: quote it whole
        chosen = [(candidates[0], 0, len(candidates[0].passage.text))]
    numbers: dict[str, int] = {}
    citations: list[Citation] = []
    sentences: list[AnswerSentence] = []
    for hit, s, e in chosen:
        pid = hit.passage.id
        if pid not in numbers:
            numbers[pid] = len(numbers) + 1
            citations.append(Citation.from_hit(hit))
        sentences.append(AnswerSentence(text=hit.passage.text[s:e], passage_id=pid, citation=numbers[pid]))
    text = " ".join(f"{_one_line(x.text)} [{x.citation}]" for x in sentences)
    text += contradiction_note([hit.passage for hit, _, _ in chosen], contact)
    return Answer(
        question=question,
        answered=True,
        answer=text,
        confidence=conf,
        citations=citations,
        sentences=sentences,
        support_contact=contact,
        retrieved=hits,
        evidence=evidence,
    )


def contradiction_note(quoted: list[Passage], contact: SupportContact) -> str:
    """A sentence to add when two quoted passages contradict each other (their citation numbers), else ""."""
    cited = list({p.id: p for p in quoted}.values())  # in citation order
    for i, a in enumerate(cited):
        for j in range(i + 1, len(cited)):
            if conflict_between(a, cited[j]) is not None:
                return (f" Note: the store's policies state this differently in two places ([{i + 1}] and [{j + 1}]). "
                        f"{refusal_message(contact)}")
    return ""


def _one_line(text: str) -> str:
    # Sentences are verbatim; inside the joined answer line, line breaks become spaces.
    return " ".join(text.split())
