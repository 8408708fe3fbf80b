"""Compose an answer from retrieved passages: verbatim sentences with citation markers, or a refusal.

Nothing here generates text: an answer is made only of sentences quoted from the passages
plus the fixed wording in this module, so it cannot invent policy.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from assistant.core.refusal import DEFAULT_THRESHOLD
from assistant.core.sentences import sentence_spans, split_sentences
from assistant.schema import Answer, AnswerSentence, Citation, Hit, Passage, SupportContact

EMAIL_RE = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# A number may end a sentence ("call +49 30 6120 4455."): only a letter, digit or ".<digit>" after it stops it.
PHONE_RE = re.compile(r"(?<![\w.])\+?\d[\d ()./-]{7,}\d(?!\w|\.\w)")
# Sentences that lean on the one before them ("These fees ...") are quoted with it.
ANAPHORA_RE = re.compile(r"^(?:these|this|that|those|it|they|such|however|and|but|also|otherwise)\b", re.I)
REFUSAL_TEXT = "I couldn't find this in the store's policies, so I won't guess."
INSTRUCTION_TEXT = "I can only answer questions about the store's policies, so I can't do that."
CONTACT_CONFIDENCE = 0.9  # a contact question answered from the passage that states the contact details


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


_DAY = r"(?:mon|tue|tues|wed|wednes|thu|thur|thurs|fri|sat|satur|sun)(?:day)?s?"
_TIME = r"\d{1,2}(?:[:.]\d{2})?(?:\s*(?:am|pm|a\.m\.|p\.m\.))?"
# "Monday to Friday from 9:00 to 18:00", "Tuesday to Sunday, 11:00 to 22:00", "8 am to 6 pm", "24 hours a day"
HOURS_RE = re.compile(
    rf"\b(?:{_DAY}(?:\s*(?:to|-|–|through|and|&)\s*{_DAY})?,?\s*(?:from\s+)?)?{_TIME}\s*(?:to|-|–|until)\s*{_TIME}"
    r"|\b24 hours a day\b|\b24/7\b",
    re.I,
)
PHONE_WORDS_RE = re.compile(r"\b(?:call|phone|telephone|line|ring|hotline)\b", re.I)
# Questions that ask how to reach the store rather than about a policy, by the channel they need
# (the first that matches): when to call, a phone number, an email address, or any way at all.
CONTACT_QUESTIONS = (
    ("hours", re.compile(r"\b(?:opening|open|business|office) hours\b|\bwhen (?:are you|is (?:the|your)(?: \w+){1,2}) open\b"
                         r"|\bwhen can i (?:call|reach|phone|ring)\b|\bphone line open\b", re.I)),
    ("phone", re.compile(r"\b(?:your|a|the) (?:tele)?phone(?: number)?\b|\b(?:tele)?phone (?:number|line)\b"
                         r"|\bcall (?:you|us|someone|the (?:store|shop))\b|\bring you\b|\bhotline\b", re.I)),
    ("email", re.compile(r"\byour e-?mail\b|\be-?mail (?:you|us|support)\b|\be-?mail address (?:for|of) (?:the )?(?:support|customer|you)", re.I)),
    ("any", re.compile(r"\breach (?:you|someone|a person|support|customer service|the (?:store|shop))\b"
                       r"|\bcontact (?:you|support|the (?:store|shop)|customer service|a person)\b|\bget in touch\b"
                       r"|\b(?:speak|talk) (?:to|with) (?:someone|a person|a human|support)\b", re.I)),
)


def _hours_in(text: str) -> str | None:
    """The opening hours a passage states: from the first to the last time range of the sentence
    that gives them (preferring one about the phone line), verbatim; None when it states none."""
    found = []
    for sentence in split_sentences(text):
        spans = [m for m in HOURS_RE.finditer(sentence) if re.search(_DAY + r"|[:.]\d{2}|am|pm|24", m.group(0), re.I)]
        if spans:
            found.append((bool(PHONE_WORDS_RE.search(sentence) or PHONE_RE.search(sentence)), sentence[spans[0].start() : spans[-1].end()]))
    if not found:
        return None
    return max(found, key=lambda x: x[0])[1].strip()


def find_support_contact(passages: list[Passage]) -> SupportContact:
    """The store's human support contact as the corpus states it.

    ``text``/``kind`` are the main channel: the most-cited support email, else a phone. The
    other fields hold every channel found: ``email``, ``phone`` (in the email's passage first,
    else in a passage that speaks of calling or contact), ``hours`` (the times stated beside
    the phone or email) and the ids of the passages stating them.
    """
    emails: Counter[str] = Counter()
    first: dict[str, str] = {}
    for p in passages:
        for e in EMAIL_RE.findall(p.text):
            e = e.rstrip(".")
            emails[e] += 1
            first.setdefault(e, p.id)
    by_id = {p.id: p for p in passages}
    email = email_pid = None
    if emails:
        # Prefer addresses that look like support addresses, then the most frequent.
        email = max(emails, key=lambda e: (any(w in e.lower() for w in ("support", "help", "service", "care")), emails[e]))
        email_pid = first[email]
    phone = phone_pid = None
    ordered = ([by_id[email_pid]] if email_pid else []) + [p for p in passages if p.id != email_pid]
    for p in ordered:
        if p.id == email_pid or re.search(r"contact|call|phone|support", p.text, re.I):
            m = PHONE_RE.search(p.text)
            if m:
                phone, phone_pid = m.group(0).strip(), p.id
                break
    hours = hours_pid = None
    for pid in dict.fromkeys(x for x in (phone_pid, email_pid) if x):
        hours = _hours_in(by_id[pid].text)
        if hours:
            hours_pid = pid
            break
    ids = tuple(dict.fromkeys(x for x in (email_pid, phone_pid, hours_pid) if x))
    channels = {"email": email, "phone": phone, "hours": hours, "passage_ids": ids}
    if email:
        return SupportContact(text=email, kind="email", passage_id=email_pid, **channels)
    if phone:
        return SupportContact(text=phone, kind="phone", passage_id=phone_pid, **channels)
    return SupportContact(text="the store's customer support team", kind="none", passage_id=None, **channels)


def refusal_message(contact: SupportContact) -> str:
    """Where to turn instead: every channel the corpus gives (email, phone and its hours)."""
    if contact.kind == "none":
        return "Please contact the store's customer support team."
    email = contact.email or (contact.text if contact.kind == "email" else None)
    phone = contact.phone or (contact.text if contact.kind == "phone" else None)
    ways = []
    if email:
        ways.append(f"at {email}")
    if phone:
        ways.append(f"by phone on {phone}" + (f" ({contact.hours})" if contact.hours else ""))
    return f"Please contact the store's support team {' or '.join(ways)}."


def contact_request(question: str) -> str | None:
    """The channel a question asks for ("hours", "phone", "email" or "any"); None when it asks none."""
    return next((channel for channel, pattern in CONTACT_QUESTIONS if pattern.search(question)), None)


def is_contact_question(question: str) -> bool:
    """True when ``question`` asks how to reach the store (phone, email, hours)."""
    return contact_request(question) is not None


def answer_contact(
    question: str, contact: SupportContact, passages: dict[str, Passage], hits: list[Hit], evidence: dict | None = None
) -> Answer | None:
    """Answer a contact question from the passages that state the store's contact details.

    Quotes the sentences of those passages that give a channel (email, phone, hours), each with
    its citation; None when the question is not about contact or the corpus does not state the
    channel it asks for.
    """
    wanted = contact_request(question)
    given = {"hours": contact.hours, "phone": contact.phone, "email": contact.email}
    if wanted is None or not (any(given.values()) if wanted == "any" else given[wanted]):
        return None  # not about contact, or the corpus does not state what it asks ("opening hours" with none given)
    score_of = {h.passage.id: h.score for h in hits}
    citations: list[Citation] = []
    sentences: list[AnswerSentence] = []
    for pid in contact.passage_ids:
        p = passages.get(pid)
        if p is None:
            continue
        quoted = [
            p.text[s:e] for s, e in sentence_spans(p.text)
            if EMAIL_RE.search(p.text[s:e]) or PHONE_RE.search(p.text[s:e])
            or (contact.hours and contact.hours in p.text[s:e])
        ]  # fmt: skip
        if not quoted:
            continue
        n = len(citations) + 1
        citations.append(Citation(id=p.id, doc_id=p.doc_id, title=p.title, text=p.text, score=round(float(score_of.get(p.id, 0.0)), 4)))
        sentences += [AnswerSentence(text=t, passage_id=p.id, citation=n) for t in quoted]
    if not sentences:
        return None
    evidence = {**(evidence or {}), "contact": 1.0}
    return Answer(
        question=question,
        answered=True,
        answer=" ".join(f"{_one_line(x.text)} [{x.citation}]" for x in sentences),
        confidence=CONTACT_CONFIDENCE,
        citations=citations,
        sentences=sentences,
        support_contact=contact,
        retrieved=hits,
        evidence=evidence,
    )


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


def _one_line(text: str) -> str:
    # Sentences are verbatim; inside the joined answer line, line breaks become spaces.
    return " ".join(text.split())
