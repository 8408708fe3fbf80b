"""How to reach the store's people: the support contact the corpus states (email, phone and its hours,
live chat, the shop's postal address), the refusal line that names every channel, and contact
questions answered from that passage."""

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
# A postal address: a house number beside a street ("12 High Street", "Oranienstraße 48",
# "5 rue de Rivoli", "Via Roma 12"), or a postcode beside its town ("10969 Berlin", "SW1A 1AA",
# "Austin, TX 78701").
_STREET = (r"(?i:street|st\.?|road|rd\.?|avenue|ave\.?|lane|ln\.?|boulevard|blvd\.?|drive|dr\.?|way|square|sq\.?|place"
           r"|court|ct\.?|terrace|parade|row|close|crescent|highway|hwy\.?|parkway|pkwy\.?)")
_STREET_SUFFIX = r"(?i:stra(?:ß|ss)e|str\.|weg|platz|allee|gasse|damm|ufer|markt|laan|straat|gracht|plein|kade|vej|gade|gatan|gata|vägen|katu)"
ADDRESS_RE = re.compile(
    rf"\b\d{{1,5}}[A-Za-z]?,?\s+(?:[A-Z][\w'’.-]*\s+){{1,4}}{_STREET}(?!\w)"  # 12 High Street, 350 Fifth Avenue
    r"|\b\d{1,5}[a-z]?,?\s+(?i:rue|avenue|boulevard|chemin|allée|quai)\s"  # 5 rue de Rivoli
    rf"|\b[A-ZÄÖÜ][\wäöüß-]*{_STREET_SUFFIX}\s+\d{{1,4}}[a-z]?\b"  # Oranienstraße 48, Keizersgracht 12
    r"|\b(?:Via|Viale|Calle|Avenida|Piazza|Plaza|Corso|Largo|Rua|Ulica)\s+(?:[A-Z][\w'’-]*\s+){1,3}\d{1,4}\b"  # Via Roma 12
    r"|\b[A-Z]{1,2}\d[A-Z\d]?\s\d[A-Z]{2}\b"  # SW1A 1AA
    r"|(?:^|,)\s*(?:[A-Z]{1,2}-)?(?!(?:19|20)\d\d\b)\d{4,5}\s+[A-ZÄÖÜ][a-zäöüß]+|\b[A-Z]{2}\s+\d{5}(?:-\d{4})?\b"  # , 10969 Berlin (not a year); TX 78701
)
_PLACE_WORDS_RE = re.compile(r"\b(?:shop|store|office|workshop|showroom|studio|boutique|restaurant|pharmacy|premises|located|based"
                             r"|visit|find us|headquarter|address|branch|counter|reception)", re.I)
_RETURN_WORDS_RE = re.compile(r"\b(?:return|send (?:it|them|the \w+) back|ship (?:it|them) back|post (?:it|them) back)", re.I)
PHONE_WORDS_RE = re.compile(r"\b(?:call|phone|telephone|line|ring|hotline)\b", re.I)
# When an email gets its reply ("how soon will you answer my email"): the email channel, but not its address.
REPLY_TIME = (r"\b(?:answer|repl(?:y|ies)|respond|response|get back)\w*(?: \w+){0,3}? (?:to )?(?:my |an |your |the )?e-?mails?\b"
              r"|\be-?mail (?:repl(?:y|ies)|responses?|answers?)\b"
              # "how fast do you reply?", "how quickly will someone respond?"
              r"|\bhow (?:soon|quickly|fast|long)\b(?: \w+){0,5}? (?:answer|repl(?:y|ies)|respond|get back|hear back)\w*\b"
              # "when will I hear back?" (asked on its own: "when will I hear back about my refund?" asks of the refund)
              r"|\bwhen (?:will|would|should|do|can|might) (?:i|we) (?:hear back|get (?:a |an )?(?:reply|response|answer))"
              r"(?: from (?:you|support|the (?:team|store|shop)))?\W*$")
REPLY_TIME_RE = re.compile(REPLY_TIME, re.I)
# A sentence saying how soon a message is answered ("We answer emails within 48 hours.", "... and we
# will get back to you within 5-20 hours!", "Our support team answers at ..., usually within one working day.").
REPLY_STATED_RE = re.compile(
    r"\b(?:answers?|answered|repl(?:y|ies|ied)|respond(?:s|ed)?|get back|gets back)\b.{0,80}?"
    r"\b(?:within|in (?:about |around |under )?(?:\d|an? |one |two |a few )|same[- ]day|next (?:working |business )?day)",
    re.I,
)
_NEG = r"(?:does ?n[o'’]?t|did ?n[o'’]?t|do ?n[o'’]?t|does not|did not|do not|does ?nt|did ?nt|wo ?n[o'’]?t|can ?n[o'’]?t|cannot|could ?n[o'’]?t|could not)"
_HELPS = r"(?:answer|cover|help|mention|address)(?:s|es|ed)?(?: with)?"
_MINE = r"(?:my|the|this) (?:question|problem|issue|query)"
# A channel named as a sentence of its own asks for it: "by email?" after "How do I reach customer service?",
# "and email?" after "Is there a live chat?" (not "Can I cancel my order by email?": that asks of the order).
BARE_CHANNEL = r"(?:^|[.?!]\s+)\W*(?:(?:and|or|but|also|what about|how about)\s+)?(?:(?:by|via|through|over)\s+(?:the\s+)?)?{}\W*$"
# Questions that ask how to reach the store rather than about a policy, by the channel they need
# (the first that matches): when to call, a phone number, an email address, or any way at all.
CONTACT_QUESTIONS = (
    # Where the shop is (not an email, delivery, billing or return address: those name their kind).
    ("address", re.compile(r"\b(?:your|ur|the (?:shop|store)(?:'s)?|the) (?:shop(?:'s)? |store(?:'s)? |office |postal |street |physical |business |mailing )?(?:add?ress|location)\b"
                           r"|\bwhere (?:is your (?:\w+ )?(?:shop|store|office|workshop|showroom|studio|boutique|restaurant|pharmacy|location|branch)"
                           r"|is the (?:\w+ )?(?:shop|store|office|workshop|showroom|studio|boutique|restaurant|pharmacy)"
                           r"|can i find (?:you|your (?:\w+ )?(?:shop|store|office|workshop|showroom)))\b"
                           r"|\bwhere are you (?:located|based|situated)\b|\bwhere are you\W*$|\bhow (?:do|can) i (?:find|get to) (?:you|your (?:\w+ )?(?:shop|store|office|workshop))\b"
                           r"|\bdirections to (?:you|your)\b"
                           # a visit needs the address ("Can I visit your workshop in person?")
                           r"|\bvisit (?:you|your (?:\w+ )?(?:shop|store|office|workshop|showroom|studio|boutique|premises))\b"
                           r"|\b(?:shop|store|office|workshop|showroom|studio|boutique) (?:i|we) (?:can|could) visit\b", re.I)),
    ("hours", re.compile(r"\b(?:opening|open|business|office) hours\b|\bwhen (?:are you|is (?:the|your)(?: \w+){1,2}) open\b"
                         r"|\b(?:when|what times?|which (?:hours|times|days)) (?:can|could|should|do) i (?:call|reach|phone|ring)\b|\bphone line open\b", re.I)),
    ("phone", re.compile(BARE_CHANNEL.format(r"(?:tele)?phone") + r"|\b(?:your|a|the) (?:tele)?phone(?: number)?\b|\b(?:tele)?phone (?:number|line)\b"
                         r"|\bcall (?:you|us|someone|the (?:store|shop))\b|\bring you\b|\bhotline\b", re.I)),
    ("email", re.compile(BARE_CHANNEL.format(r"e-?mail") + r"|\byour(?: \w+){0,2} e-?mail\b|\be-?mail (?:you|us|support)\b|\be-?mail add?ress (?:for|of) (?:the )?(?:support|customer|you)"
                         # "which email should I write to?", "by email. Which address do I give?"
                         r"|\b(?:which|what) e-?mail (?:add?ress|should|do|can|to)\b|\bwhere (?:do|can|should) i (?:send|write) (?:an |my |the )?e-?mail"
                         r"|\b(?:which|what) add?ress\b.{0,40}\be-?mail|\be-?mail\b.{0,60}\b(?:which|what) add?ress\b"
                         # when an email gets its reply ("how soon will you answer my email")
                         r"|" + REPLY_TIME, re.I)),
    ("any", re.compile(r"\breach (?:you|someone|a (?:real )?person|a human|an? (?:real |live )?agent|support|customer service|the (?:store|shop))\b"
                       r"|\bwho (?:can|do|should) i (?:talk|speak) to\b|\b(?:a real|a live|a human) (?:agent|person|human)\b"
                       r"|\bcontact (?:you|support|the (?:store|shop)|customer service|a person)\b|\bget in touch\b"
                       r"|\b(?:speak|talk) (?:to|with) (?:someone|a person|a human|support)\b", re.I)),
    # A question the FAQ does not answer, with nothing else asked ("I still have a question the FAQ didn't
    # cover.", "Your FAQ does not answer my question. What should I do?"): the people who can answer it.
    ("more", re.compile(
        r"\b(?:still have(?: a| an| some| more| other| another)?|have (?:another|a different|one more|a further|other|more|some more)"
        r"|got (?:another|a different|one more|other|more)) questions?"
        rf"(?: (?:that |which )?(?:the |your |ur )?(?:faqs?|page|site|website|help ?cent(?:er|re)|policies|answers?) {_NEG} (?:cover|answer|mention|list|address)(?: it)?)?"
        r"(?: (?:that|which) (?:is|was|are|were)(?:n[o'’]?t| not) (?:covered|answered|listed|there|mentioned))?\W*$"
        rf"|\b(?:faqs?|page|site|website|help ?cent(?:er|re)|policies|answers?|this|it|that) {_NEG} (?:\w+ )?{_HELPS} {_MINE}"
        rf"|\b(?:none of (?:this|these|that|it|the answers)|nothing(?: here)?) (?:\w+ )?{_HELPS} {_MINE}"
        r"|\b(?:ca?n[o'’]?t|cannot|could ?n[o'’]?t|could not|did ?n[o'’]?t|did not|unable to|failed to) find (?:an? |the |my |any )?"
        r"(?:answers?|what i(?:'m| am| was)? (?:was )?looking for|the (?:information|info) i need)\b", re.I)),
)
# The corpus's own line for a question it does not answer ("Unable to find satisfactory answers ? Contact Support").
NOT_FOUND_RE = re.compile(
    r"\b(?:unable to|ca?n[o'’]?t|cannot|could ?n[o'’]?t|could not|did ?n[o'’]?t|did not|do ?n[o'’]?t|do not) find\b"
    r"|\b(?:other|more|further|additional|any (?:other |more |further )?)questions\b|\bstill have (?:a |any )?questions?\b",
    re.I,
)


# What states each channel a contact question asks for: its sentence opens an answer that quotes it.
CHANNEL_RES = {"phone": PHONE_RE, "email": EMAIL_RE, "hours": HOURS_RE, "address": ADDRESS_RE}


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
    passages stating them; ``address``: the sentence that states the shop's postal address (a
    house number by its street, or a postcode by its town; one about returns only when no other does).
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
    address = address_pid = None
    best = None
    for i, p in enumerate(passages):  # the sentence stating the shop's address, a return address last
        if not ADDRESS_RE.search(p.text):
            continue
        for t in split_sentences(p.text):
            if ADDRESS_RE.search(t):
                rank = (not _RETURN_WORDS_RE.search(t), bool(_PLACE_WORDS_RE.search(t)), len(ADDRESS_RE.findall(t)), -i)
                if best is None or rank > best[0]:
                    best = (rank, t.strip(), p.id)
    if best is not None:
        _, address, address_pid = best
    chat = chat_pid = None
    for p in passages:
        if CHAT_RE.search(p.text):  # one regex over the text; only that passage is split
            chat = next((t for t in split_sentences(p.text) if CHAT_RE.search(t)), p.text).strip()
            chat_pid = p.id
            break
    ids = tuple(dict.fromkeys(x for x in (email_pid, phone_pid, hours_pid, chat_pid, address_pid) if x))
    channels = {"email": email, "phone": phone, "hours": hours, "passage_ids": ids, "chat": chat, "address": address}
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
    """The channel a question asks for ("address", "hours", "phone", "email", "any", or "more": a question
    the FAQ does not answer); None when it asks none."""
    return next((channel for channel, pattern in CONTACT_QUESTIONS if pattern.search(question)), None)


def lacks_channel(question: str, answer_text: str, contact: SupportContact, *, parts: int = 0) -> bool:
    """True when ``question`` asks for the store's email address, phone number or hours, the corpus
    states that channel, and ``answer_text`` quotes none of it ("What is your customer support
    email address?" answered with "Contact Support"); or asks for any way to reach a person and the
    answer gives none (no email, number or chat); or asks where the shop is and the answer gives no
    postal address; or (a question of one part: ``parts`` < 2) asks how soon an email is answered and
    the answer does not say. The contact passages should answer instead."""
    wanted = contact_request(question)
    if wanted == "email" and REPLY_TIME_RE.search(question):
        # how soon an email is answered: a one-part question must be answered by a sentence saying so
        return parts < 2 and bool(contact.email) and not REPLY_STATED_RE.search(answer_text)
    if wanted == "email":
        return bool(contact.email) and not EMAIL_RE.search(answer_text)
    if wanted == "phone":
        return bool(contact.phone) and not PHONE_RE.search(answer_text)
    if wanted == "hours":
        return bool(contact.hours) and not HOURS_RE.search(answer_text)
    if wanted == "address":
        return bool(contact.address) and not ADDRESS_RE.search(answer_text)
    if wanted in ("any", "more"):  # any way to reach a person will do, but the answer must give one
        given = contact.email or contact.phone or contact.chat
        return bool(given) and not any(rx.search(answer_text) for rx in (EMAIL_RE, PHONE_RE, CHAT_WORD_RE))
    return False


def unstated_channel(question: str, answer_text: str, contact: SupportContact, *, parts: int = 0) -> bool:
    """True when ``question`` (of one part: ``parts`` < 2) asks for the store's phone number, email address,
    hours or address, the corpus gives none (``contact``), and ``answer_text`` states none either: "is there
    a phone number I can call?" in a store that lists none is not answered by "Contact Support" or the
    live-chat sentence; the policies don't say, and the refusal names the channels they do give."""
    wanted = contact_request(question)
    if parts >= 2 or wanted not in CHANNEL_RES or (wanted == "email" and REPLY_TIME_RE.search(question)):
        return False
    given = {"phone": contact.phone, "email": contact.email, "hours": contact.hours, "address": contact.address}[wanted]
    return not given and not CHANNEL_RES[wanted].search(answer_text)


def is_contact_question(question: str) -> bool:
    """True when ``question`` asks how to reach the store (phone, email, hours)."""
    return contact_request(question) is not None


def answer_contact(
    question: str, contact: SupportContact, passages: dict[str, Passage], hits: list[Hit], evidence: dict | None = None
) -> Answer | None:
    """Answer a contact question from the passages that state the store's contact details.

    Quotes the sentences of those passages that give a channel (email, phone, hours), each with
    its citation; None when the question is not about contact or the corpus does not state the
    channel it asks for. A question the FAQ does not answer ("more") opens with the corpus's own line
    for that case when a retrieved passage has one ("Unable to find satisfactory answers ? Contact Support").
    """
    wanted = contact_request(question)
    given = {"hours": contact.hours, "phone": contact.phone, "email": contact.email, "chat": contact.chat, "address": contact.address}
    if wanted is None or not (any(given.values()) if wanted in ("any", "more") else given[wanted]):
        return None  # not about contact, or the corpus does not state what it asks ("opening hours" with none given)
    score_of = {h.passage.id: h.score for h in hits}
    citations: list[Citation] = []
    sentences: list[AnswerSentence] = []
    ordered = [pid for pid in passages if pid in contact.passage_ids]  # in the caller's (corpus) order
    # How soon an email is answered: the sentences saying so, when the contact passages hold one.
    reply = wanted == "email" and REPLY_TIME_RE.search(question) and any(
        REPLY_STATED_RE.search(passages[pid].text[s:e]) for pid in ordered for s, e in sentence_spans(passages[pid].text)
    )
    cited: dict[str, int] = {}

    def add(p: Passage, quoted: list[str]) -> None:
        if p.id not in cited:
            cited[p.id] = len(citations) + 1
            citations.append(Citation(id=p.id, doc_id=p.doc_id, title=p.title, text=p.text, score=round(float(score_of.get(p.id, 0.0)), 4)))
        known = {x.text for x in sentences}
        sentences.extend(AnswerSentence(text=t, passage_id=p.id, citation=cited[p.id]) for t in quoted if t not in known)

    if wanted == "more":  # the corpus's own line for such a question opens the answer, when a retrieved passage has one
        for p in (h.passage for h in hits):
            spans = sentence_spans(p.text)
            at = next((i for i, (s, e) in enumerate(spans) if NOT_FOUND_RE.search(p.text[s:e])), None)
            if at is not None:
                start, end = spans[at]
                if p.text[start:end].rstrip().endswith("?") and at + 1 < len(spans):
                    end = spans[at + 1][1]  # one quote with the line that answers it: "... answers ? Contact Support"
                add(p, [p.text[start:end]])
                break
    reached = False
    for pid in ordered:
        p = passages[pid]
        if reply:
            quoted = [p.text[s:e] for s, e in sentence_spans(p.text) if REPLY_STATED_RE.search(p.text[s:e])]
        elif wanted == "address":  # where the shop is: the sentence that says so, nothing else
            quoted = [p.text[s:e] for s, e in sentence_spans(p.text) if p.text[s:e].strip() == contact.address]
        else:
            quoted = [
                p.text[s:e] for s, e in sentence_spans(p.text)
                if EMAIL_RE.search(p.text[s:e]) or PHONE_RE.search(p.text[s:e])
                or (contact.hours and contact.hours in p.text[s:e]) or (wanted in ("any", "more") and CHAT_RE.search(p.text[s:e]))
            ]  # fmt: skip
        if not quoted:
            continue
        first = CHANNEL_RES.get(wanted) if wanted != "address" else None  # the address: its sentence alone
        if first is not None and not reply:  # the sentence giving the channel asked for opens the answer
            quoted.sort(key=lambda t: not first.search(t))
        add(p, quoted)
        reached = True
    if not reached:  # no channel to give (the contact passages left out)
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
