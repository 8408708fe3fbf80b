"""How to reach the store's people: the support contact the corpus states (email, phone and its hours),
the refusal line that names every channel, and contact questions answered from that passage."""

from __future__ import annotations

import re
from collections import Counter

from assistant.core.sentences import one_line, sentence_spans, split_sentences
from assistant.schema import (
    Answer,
    AnswerSentence,
    Citation,
    Hit,
    Passage,
    SupportContact,
)

EMAIL_RE = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# A number may end a sentence ("call +49 30 6120 4455."): only a letter, digit or ".<digit>" after it stops it.
PHONE_RE = re.compile(r"(?<![\w.])\+?\d[\d ()./-]{7,}\d(?!\w|\.\w)")
CONTACT_CONFIDENCE = 0.9  # a contact question answered from the passage that states the contact details
_DAY = r"(?:mon|tue|tues|wed|wednes|thu|thur|thurs|fri|sat|satur|sun)(?:day)?s?"
_TIME = r"\d{1,2}(?:[:.]\d{2})?(?:\s*(?:am|pm|a\.m\.|p\.m\.))?"
# "Monday to Friday from 9:00 to 18:00", "Tuesday to Sunday, 11:00 to 22:00", "8 am to 6 pm", "24 hours a day"
HOURS_RE = re.compile(
    rf"\b(?:{_DAY}(?:\s*(?:to|-|–|through|and|&)\s*{_DAY})?,?\s*(?:from\s+)?)?{_TIME}\s*(?:to|-|–|until)\s*{_TIME}"
    r"|\b24 hours a day\b|\b24/7\b",
    re.I,
)
# A live chat offered to customers ("click the button below to chat live", "use our live chat").
CHAT_RE = re.compile(r"\b(?:live[- ]chat|chat live|chat with (?:us|one of|our|a|an)\b)", re.I)
CHAT_WORD_RE = re.compile(r"\bchat\b", re.I)  # an answer that names a chat at all gives that channel
PHONE_WORDS_RE = re.compile(r"\b(?:call|phone|telephone|line|ring|hotline)\b", re.I)
# When an email gets its reply ("how soon will you answer my email"): the email channel, but not its address.
REPLY_TIME = (r"\b(?:answer|repl(?:y|ies)|respond|response|get back)\w*(?: \w+){0,3}? (?:to )?(?:my |an |your |the )?e-?mails?\b"
              r"|\be-?mail (?:repl(?:y|ies)|responses?|answers?)\b")
REPLY_TIME_RE = re.compile(REPLY_TIME, re.I)
# Questions that ask how to reach the store rather than about a policy, by the channel they need
# (the first that matches): when to call, a phone number, an email address, or any way at all.
CONTACT_QUESTIONS = (
    ("hours", re.compile(r"\b(?:opening|open|business|office) hours\b|\bwhen (?:are you|is (?:the|your)(?: \w+){1,2}) open\b"
                         r"|\bwhen can i (?:call|reach|phone|ring)\b|\bphone line open\b", re.I)),
    ("phone", re.compile(r"\b(?:your|a|the) (?:tele)?phone(?: number)?\b|\b(?:tele)?phone (?:number|line)\b"
                         r"|\bcall (?:you|us|someone|the (?:store|shop))\b|\bring you\b|\bhotline\b", re.I)),
    ("email", re.compile(r"\byour(?: \w+){0,2} e-?mail\b|\be-?mail (?:you|us|support)\b|\be-?mail add?ress (?:for|of) (?:the )?(?:support|customer|you)"
                         # when an email gets its reply ("how soon will you answer my email")
                         r"|" + REPLY_TIME, re.I)),
    ("any", re.compile(r"\breach (?:you|someone|a (?:real )?person|a human|an? (?:real |live )?agent|support|customer service|the (?:store|shop))\b"
                       r"|\bwho (?:can|do|should) i (?:talk|speak) to\b|\b(?:a real|a live|a human) (?:agent|person|human)\b"
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
    the phone or email), ``chat`` (the first sentence offering a live chat) and the ids of the
    passages stating them.
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
        if p.id == email_pid or re.search(r"contact|call|phone|support", p.text, re.IGNORECASE):
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
    chat = chat_pid = None
    for p in passages:
        if CHAT_RE.search(p.text):  # one regex over the text; only that passage is split
            chat = next((t for t in split_sentences(p.text) if CHAT_RE.search(t)), p.text).strip()
            chat_pid = p.id
            break
    ids = tuple(dict.fromkeys(x for x in (email_pid, phone_pid, hours_pid, chat_pid) if x))
    channels = {"email": email, "phone": phone, "hours": hours, "passage_ids": ids, "chat": chat}
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


def lacks_channel(question: str, answer_text: str, contact: SupportContact) -> bool:
    """True when ``question`` asks for the store's email address, phone number or hours, the corpus
    states that channel, and ``answer_text`` quotes none of it ("What is your customer support
    email address?" answered with "Contact Support"); or asks for any way to reach a person and the
    answer gives none (no email, number or chat). The contact passages should answer instead."""
    wanted = contact_request(question)
    if wanted == "email":
        return bool(contact.email) and not REPLY_TIME_RE.search(question) and not EMAIL_RE.search(answer_text)
    if wanted == "phone":
        return bool(contact.phone) and not PHONE_RE.search(answer_text)
    if wanted == "hours":
        return bool(contact.hours) and not HOURS_RE.search(answer_text)
    if wanted == "any":  # any way to reach a person will do, but the answer must give one
        given = contact.email or contact.phone or contact.chat
        return bool(given) and not any(rx.search(answer_text) for rx in (EMAIL_RE, PHONE_RE, CHAT_WORD_RE))
    return False


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
    given = {"hours": contact.hours, "phone": contact.phone, "email": contact.email, "chat": contact.chat}
    if wanted is None or not (any(given.values()) if wanted == "any" else given[wanted]):
        return None  # not about contact, or the corpus does not state what it asks ("opening hours" with none given)
    score_of = {h.passage.id: h.score for h in hits}
    citations: list[Citation] = []
    sentences: list[AnswerSentence] = []
    for pid in [pid for pid in passages if pid in contact.passage_ids]:  # in the caller's (corpus) order
        p = passages[pid]
        quoted = [
            p.text[s:e] for s, e in sentence_spans(p.text)
            if EMAIL_RE.search(p.text[s:e]) or PHONE_RE.search(p.text[s:e])
            or (contact.hours and contact.hours in p.text[s:e]) or (wanted == "any" and CHAT_RE.search(p.text[s:e]))
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
        answer=" ".join(f"{one_line(x.text)} [{x.citation}]" for x in sentences),
        confidence=CONTACT_CONFIDENCE,
        citations=citations,
        sentences=sentences,
        support_contact=contact,
        retrieved=hits,
        evidence=evidence,
    )
