"""Compose an answer from retrieved passages: verbatim sentences with citation markers, or a refusal.

Nothing here generates text: an answer is made only of sentences quoted from the passages
plus the fixed wording in this module, so it cannot invent policy.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from assistant.core.contact import CHANNEL_RES, contact_request, refusal_message
from assistant.core.refusal import DEFAULT_THRESHOLD
from assistant.core.sentences import (
    ANAPHORA_RE,
    ANSWER_TRAITS,
    NEGATION_RE,
    QUESTION_TYPES,
    STATES_AMOUNT_RE,
    SentenceSelector,
    one_line,
    question_types,
    score_sentences,
)
from assistant.index.consistency import conflict_between
from assistant.schema import (
    Answer,
    AnswerSentence,
    Citation,
    Hit,
    Passage,
    SupportContact,
)

# A sentence that leans on the one before it (ANAPHORA_RE, sentences.py) is quoted with it, but one
# that opens the answer with a connective ("And for Asia is 3 to 10 working days.") reads on its
# own: its sentence before is not put in front of it.
CONNECTIVE_RE = re.compile(r"^(?:however|and|but|also|otherwise)\b", re.IGNORECASE)
REFUSAL_TEXT = "I couldn't find this in the store's policies, so I won't guess."
INSTRUCTION_TEXT = "I can only answer questions about the store's policies, so I can't do that."
NOT_STATED_TEXT = "The store's policies cover this topic but don't say that, so I won't guess."
# A question asking for an amount ("How much does shipping to Germany cost?") is answered only
# by a sentence stating one; passages on the topic without one get a "not_stated" refusal.
ASKS_AMOUNT_RE = re.compile(
    r"\bhow much\b|\bhow expensive\b|\bwhat (?:does|do|will|would|is|are) .{0,40}\b(?:cost|price)s?\b|\b(?:price|cost) (?:of|for|to)\b",
    re.IGNORECASE,
)
# The same for a length of time ("How long does engraving take?", "how soon do you reply?"): answered
# only by a sentence stating a time, a duration, a date or a day ("within 2 working days", "7-day",
# "18:00", "Monday", "immediately"). A measure stands for "how long / how fast" in its other sense
# ("45 cm", "25 km/h"). "When ..." is not asked this way: "before it ships" answers it. Only a
# question of one part is refused so: one part of several may go unstated while the others are answered.
ASKS_TIME_RE = re.compile(
    r"\bhow (?:long (?:do|does|did|will|would|is|are|was|were|can|could|should|has|have|until|till|before|after|for|to)|soon|quickly|fast)\b"
    r"|\bhow many (?:minutes|hours|days|weeks|months|years)\b", re.IGNORECASE)  # not "see how long it is"
_COUNT = r"(?:\d+|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty|thirty|forty|sixty|ninety|a|an|a few|few|several|some|many)"
STATES_TIME_RE = re.compile(
    rf"\b{_COUNT}(?:\s*(?:-|–|to|or)\s*{_COUNT})?[\s-]*(?:\w+ )?(?:seconds?|minutes?|mins?|hours?|hrs?|days?|nights?|weeks?|months?|years?|yrs?)\b"
    r"|\b\d{1,2}(?:[:.]\d\d)?\s*(?:am|pm|a\.m\.|p\.m\.)|\b\d{1,2}:\d\d\b|\b(?:mon|tues?|wed(?:nes)?|thu(?:rs)?|fri|sat(?:ur)?|sun)days?\b"
    r"|\b(?:immediately|instantly|right away|at once|straight away|same[- ]day|next[- ]day|overnight|24/7|daily|weekly|monthly|annually|yearly|today|tomorrow)\b"
    r"|\b(?:january|february|march|april|may|june|july|august|september|october|november|december)\b"
    r"|\b\d+(?:[.,]\d+)?\s*(?:mm|cm|m|km|in|inch(?:es)?|ft|feet|km/h|mph|mbps|gb|mb)\b"
    # "We currently do not offer customization" answers "How long does engraving take?" too
    r"|\b(?:do not|don't|does not|doesn't|cannot|can't|no longer|unable to) (?:currently )?(?:offer|provide|do|sell|accept|support|ship)\b",
    re.IGNORECASE,
)
NOT_STATED_ASKS = ((ASKS_AMOUNT_RE, STATES_AMOUNT_RE, True), (ASKS_TIME_RE, STATES_TIME_RE, False))


# What one sentence of an FAQ answer can state outright (Assistant._answer's sentence route): a
# question asking an amount is answered by an amount, one asking how long by a duration, one asking
# what time by a clock time. FAQ rows are matched on their question, so "Until what time do you
# serve dinner?" scores far below the FAQ-row threshold against "What are your opening hours?",
# though its answer's "dinner from 18:00 to 22:30" answers it (docs/retrieval.md, section 7).
ASKS_FEE_RE = re.compile(
    r"\bwhat(?:'s|s| is| are) (?:the|your|a|an) (?:[\w-]+ ){0,3}(?:fees?|charges?|surcharges?|deposits?)\b", re.IGNORECASE
)
ASKS_CLOCK_RE = re.compile(
    r"\bwhat time\b|\b(?:until|till) when\b|\bhow (?:late|early) (?:do|does|is|are|can|will)\b"
    r"|\bwhen (?:do|does|will|is|are) (?:you|it|they|the [\w ]{1,20}?) (?:open|close|start|end|begin|finish)", re.IGNORECASE)
CLOCK_RE = re.compile(r"\b\d{1,2}(?:[:.]\d\d)?\s*(?:am|pm|a\.m\.|p\.m\.)|\b\d{1,2}:\d\d\b", re.IGNORECASE)
DURATION_RE = re.compile(
    rf"\b{_COUNT}(?:\s*(?:-|–|to|or)\s*{_COUNT})?[\s-]*(?:\w+ )?(?:seconds?|minutes?|mins?|hours?|hrs?|days?|nights?|weeks?|months?|years?|yrs?)\b",
    re.IGNORECASE,
)
STATED_KINDS = (
    ("amount", (ASKS_AMOUNT_RE, ASKS_FEE_RE), STATES_AMOUNT_RE),
    ("duration", (ASKS_TIME_RE,), re.compile(f"{DURATION_RE.pattern}|{CLOCK_RE.pattern}", re.IGNORECASE)),
    ("clock", (ASKS_CLOCK_RE,), CLOCK_RE),
)


def stated_kind(question: str) -> tuple[str, re.Pattern[str]] | None:
    """(kind, what states it) when ``question`` asks for one thing a sentence can state outright
    (an amount, a duration, a clock time); None otherwise."""
    for kind, asks, states in STATED_KINDS:
        if any(rx.search(question) for rx in asks):
            return kind, states
    return None


@dataclass(frozen=True)
class AnswerConfig:
    """How an answer picks what to quote (cosine scale of the retriever).

    Whether to answer at all is the refusal model's decision (assistant/core/refusal.py).
    """

    part_min_dense: float = DEFAULT_THRESHOLD  # a part's best passage joins the quotable ones from this cosine
    passage_margin: float = 0.06  # other passages within this of the best may be quoted
    max_passages: int = 3
    max_sentences: int = 4  # at most this many sentences chosen on their own merit (plus parts' and anaphors' ones)
    # The sentence selector (SentenceSelector): the best sentence opens the answer; another joins
    # when the selector gives it at least ``extra_min`` and ``extra_rel`` times the lead's score;
    # each part of a multi-part question adds its best sentence when that reaches ``part_min``.
    # The defaults are the grid point of docs/retrieval.md section 6 that loses no answerable
    # tuning question (out of fold: 144 of 178 complete, lead_accuracy 0.685 with the lead rule
    # below); every shorter rule there loses answerable questions (2 sentences: 124 of 178).
    extra_min: float = 0.0
    extra_rel: float = 0.0  # ... and at least this share of the leading sentence's probability
    lead_connective: bool = True  # a leading "And ..." / "However ..." sentence keeps the lead
    part_min: float = 0.2
    # The lead must state what was asked: when the question asks for a duration, an amount, a
    # contact channel or a list (ANSWER_TRAITS) and the best sentence states none, a chosen
    # sentence that does and scores at least ``lead_type_rel`` times the best one's probability
    # opens the answer instead (None: the selector's order). docs/retrieval.md, section 6.
    lead_type_rel: float | None = 0.5
    # ... and a yes/no question ("Do you offer custom jewelry?") is opened by a chosen negation
    # ("We currently do not offer customization ...") that scores at least this share of the
    # lead's probability and shares as many of the question's words, when the lead holds none.
    lead_negation_rel: float | None = 0.7
    generic_extras: bool = False  # whether a pointer-only sentence ("... for more details!") may be quoted beside the lead
    # A sentence of another passage than the lead's joins only when it scores at least this share
    # of the lead's probability (a part's best sentence still joins by ``part_min``).
    other_passage_rel: float = 0.5
    selector: SentenceSelector = field(default_factory=lambda: SentenceSelector())


def refuse(
    question: str,
    contact: SupportContact,
    *,
    confidence: float,
    reason: str,
    hits: list[Hit],
    evidence: dict | None = None,
    related: list[Citation] | None = None,
) -> Answer:
    lead = {"instruction": INSTRUCTION_TEXT, "not_stated": NOT_STATED_TEXT}.get(reason, REFUSAL_TEXT)
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
        related=related or [],
    )



PART_SPLIT_RE = re.compile(r"\?\s+|[;:]\s+|,?\s+(?:and|also|plus)\s+(?=(?:do|does|did|is|are|can|could|will|would|how|what|when|where|who|why|which|if|should|i|my|you|your)\b)", re.IGNORECASE)


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
    *,
    question: str = "",
    parts: Sequence[str] = (),
    verified: Mapping[str, list[tuple[int, int, float]]] | None = None,
) -> list[tuple[Hit, int, int]]:
    """Choose the fewest sentences that answer the question, the answer first.

    ``scores`` maps each candidate passage id to its sentences' (start, end, retriever cosine)
    for the whole question; ``part_scores`` holds the same for each of ``parts`` (the parts of a
    multi-part question); ``verified`` the verifier's cosines for the whole question. The
    selector (``cfg.selector``) scores every sentence; the best one opens the answer, another
    joins when it scores ``cfg.extra_min`` or more and at least ``cfg.extra_rel`` times the best
    one's probability (at most ``cfg.max_sentences`` in all), and
    each part adds its own best sentence when it scores ``cfg.part_min``. A pointer-only sentence
    never leads while another candidate exists and joins only with ``cfg.generic_extras``; a
    sentence of another passage than the lead's joins only from ``cfg.other_passage_rel`` of the
    lead's probability. The lead is then the first chosen sentence that states the asked kind of
    answer (``cfg.lead_type_rel``, ``cfg.lead_negation_rel``), when the best one does not. A
    sentence that starts with an anaphor ("These fees ...") brings the one before it, quoted just
    before it.
    Returns (hit, start, end) in answer order.
    """
    ranked = score_sentences(question, candidates, scores, cfg.selector, verified)
    if not ranked:
        return []
    # A sentence that only points elsewhere ("Check out our Shipping Policy Page for more
    # details!") never opens an answer while another candidate exists (rare in the tuning data,
    # so the fitted weight alone does not keep it out of the lead).
    ranked.sort(key=lambda x: x[4]["generic"])
    chosen: list[tuple[int, int, int]] = [ranked[0][1:4]]
    floor = max(cfg.extra_min, cfg.extra_rel * ranked[0][0])
    for p, rank, s, e, f in ranked[1:]:
        if len(chosen) >= cfg.max_sentences or p < floor:
            break
        if f["generic"] and not cfg.generic_extras:
            continue
        if rank != ranked[0][1] and p < cfg.other_passage_rel * ranked[0][0]:
            continue
        chosen.append((rank, s, e))
    if cfg.lead_type_rel is not None:
        # A multi-part question is answered in its parts' order: its first part says what leads.
        chosen = _lead_states_answer(
            parts[0] if parts else question, candidates, ranked, chosen, cfg.lead_type_rel, cfg.lead_negation_rel
        )
    # Without the parts' texts (older callers), each part is read as the whole question.
    for part, table in zip(list(parts) or [question] * len(part_scores), part_scores):
        part_ranked = score_sentences(part, candidates, table, cfg.selector)
        if part_ranked and part_ranked[0][0] >= cfg.part_min and part_ranked[0][1:4] not in chosen:
            chosen.append(part_ranked[0][1:4])
    ordered: list[tuple[int, int, int]] = []
    for n, (rank, s, e) in enumerate(chosen):
        hit = candidates[rank]
        text = hit.passage.text[s:e]
        if ANAPHORA_RE.match(text) and not (n == 0 and cfg.lead_connective and CONNECTIVE_RE.match(text)):
            prev = [x for x in scores.get(hit.passage.id, []) if x[1] <= s]
            if prev:
                ps, pe, _ = max(prev, key=lambda x: x[0])
                if (rank, ps, pe) in ordered:
                    ordered.remove((rank, ps, pe))
                ordered.append((rank, ps, pe))
        if (rank, s, e) not in ordered:
            ordered.append((rank, s, e))
    return [(candidates[rank], s, e) for rank, s, e in ordered]


def _lead_states_answer(
    question: str,
    candidates: Sequence[Hit],
    ranked: list[tuple[float, int, int, int, dict[str, float]]],
    chosen: list[tuple[int, int, int]],
    rel: float,
    negation_rel: float | None = None,
) -> list[tuple[int, int, int]]:
    """``chosen`` with the first sentence that states the asked kind of answer moved to the front,
    when the lead states none and that sentence scores at least ``rel`` times the lead's
    probability; for a question that only asks yes or no, the first negation at ``negation_rel``
    that shares at least as many of the question's words (None: not for yes/no questions). A
    sentence that leans on the one before it ("They are valid ...") never moves."""
    types = question_types(question)
    asked = [ANSWER_TRAITS[t] for t in types if t in ANSWER_TRAITS]
    if not asked and types == {"yesno"} and negation_rel is not None:
        asked, rel = [NEGATION_RE], negation_rel
    if not asked:
        return chosen
    info = {r[1:4]: r for r in ranked}

    def states(key: tuple[int, int, int]) -> bool:
        text = candidates[key[0]].passage.text[key[1] : key[2]]
        return any(rx.search(text) for rx in asked)

    if states(chosen[0]):
        return chosen
    lead_p, lead_overlap = info[chosen[0]][0], info[chosen[0]][4]["overlap"]
    for key in chosen[1:]:
        p, f = info[key][0], info[key][4]
        # A negation must be as much about the question as the lead: "Do you take PayPal?" is not
        # opened by "We DO NOT accept money orders, checks, or cash."
        on_topic = asked != [NEGATION_RE] or f["overlap"] >= lead_overlap
        if states(key) and p >= rel * lead_p and not f["anaphor"] and on_topic:
            return [key, *(k for k in chosen if k != key)]
    return chosen


NOT_STATED_CONFIDENCE = 0.8  # a rule, not a model: a fixed, modest confidence


def not_stated(
    question: str, candidates: Sequence[Hit], scores: Mapping[str, list[tuple[int, int, float]]], *, parts: int = 0
) -> bool:
    """True when ``question`` asks for an amount, or (a question of one part: ``parts`` < 2) a length of
    time, and no candidate sentence states one."""
    asked = [states for asks, states, any_parts in NOT_STATED_ASKS if asks.search(question) and (any_parts or parts < 2)]
    if not asked or not candidates:
        return False
    for states in asked:  # a question asking for both needs each stated somewhere
        if not any(
            states.search(h.passage.text[s:e])
            for h in candidates for s, e, _ in (scores.get(h.passage.id) or [(0, len(h.passage.text), 0.0)])
        ):  # fmt: skip
            return True
    return False


# A lead opening "Yes," or "No." answers its own section's question ("## Do you repair bikes?"). Quoted
# for another yes/no question it asserts what the policies never say ("Do you rent out bikes?" ->
# "Yes, our workshop repairs bikes of any brand."), so such an answer is decided as if the section were
# an FAQ row (the refusal model's stricter FAQ-row threshold; Assistant._answer).
YESNO_LEAD_RE = re.compile(r"^\W*(?:yes|no)\s*[,.!;:]", re.IGNORECASE)


def yes_no_title(question: str, answer: Answer, passages: Mapping[str, Passage], *, parts: int = 0) -> Passage | None:
    """The passage whose question-shaped title a bare "Yes," / "No." lead of ``answer`` replies to, when
    ``question`` (one part) is itself a yes/no question; None otherwise (nothing to check)."""
    if not answer.answered or not answer.sentences or parts >= 2 or not QUESTION_TYPES["yesno"].search(question):
        return None
    lead = answer.sentences[0]
    passage = passages.get(lead.passage_id)
    if passage is None or passage.kind != "section" or not passage.title.rstrip().endswith("?"):
        return None
    return passage if YESNO_LEAD_RE.match(lead.text) else None


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
    *,
    parts: Sequence[str] = (),
    verified: Mapping[str, list[tuple[int, int, float]]] | None = None,
    query: str | None = None,
) -> Answer:
    """Build the answer for ``question`` from ranked ``hits`` (or refuse).

    Args:
        candidates: the passages answers may quote from (best first).
        sentence_scores: for each candidate passage id, its sentences' (start, end, score).
        part_scores: the same per part of a multi-part question (``parts``, its texts).
        verified: for each candidate passage id, its sentences' verifier cosines (optional).
        query: the question as searched (typos corrected), which the sentence selector reads;
            ``question`` when not given.
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
    if not_stated(query or question, candidates, sentence_scores, parts=len(parts)):
        return refuse(
            question, contact, confidence=NOT_STATED_CONFIDENCE, reason="not_stated", hits=hits, evidence=evidence,
            related=[Citation.from_hit(candidates[0])],
        )  # fmt: skip
    chosen = select_sentences(
        candidates, sentence_scores, cfg, part_scores, question=query or question, parts=parts, verified=verified
    )
    if not chosen:  # a passage with no sentence spans: quote it whole
        chosen = [(candidates[0], 0, len(candidates[0].passage.text))]
    channel = CHANNEL_RES.get(contact_request(query or question) or "")
    if channel is not None:  # "Where can I find you in Galway?": the sentence giving the address opens the answer
        at = next((i for i, (h, s, e) in enumerate(chosen) if channel.search(h.passage.text[s:e])), 0)
        if at and not ANAPHORA_RE.match(chosen[at][0].passage.text[chosen[at][1] : chosen[at][2]]):
            chosen.insert(0, chosen.pop(at))
    numbers: dict[str, int] = {}
    citations: list[Citation] = []
    sentences: list[AnswerSentence] = []
    for hit, s, e in chosen:
        pid = hit.passage.id
        if pid not in numbers:
            numbers[pid] = len(numbers) + 1
            citations.append(Citation.from_hit(hit))
        sentences.append(AnswerSentence(text=hit.passage.text[s:e], passage_id=pid, citation=numbers[pid]))
    text = " ".join(f"{one_line(x.text)} [{x.citation}]" for x in sentences)
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
