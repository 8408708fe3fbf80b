"""Answer a message in its conversation: build the standalone readings it may have, answer them
all in one batch, and keep the message's own reading unless the conversation is needed.

Readings (no generator, only the customer's own words):
- ``alone``: the message as typed;
- ``slot``: the previous full question with the slot the message names swapped in
  ("How long does delivery to the UK take?" + "what about Asia?" ->
  "How long does delivery to Asia take?");
- ``context``: the last messages and this one read together ("Can I cancel my order? and if it
  was already shipped?").

The alone reading wins whenever the message is a question of its own; a reading from the
conversation is taken only when the message leans on it (a fragment, a pronoun, a short
message) and the passage it answers from is one the message alone also ranks near the top,
so an earlier turn never drags a new question off its own topic.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace

from assistant.core.answer import refuse
from assistant.core.sentences import SENTENCE_TRAITS, content_terms, question_types
from assistant.dialogue.clarify import offer
from assistant.dialogue.slots import (
    QUESTION_START_RE,
    WORD_RE,
    find_slots,
    followup_strength,
    fragment,
    fragment_slot,
    mentions,
    swap,
    topical_words,
)
from assistant.errors import QuestionError
from assistant.schema import Answer

MAX_HISTORY = 20  # earlier messages accepted with a question
CONTEXT_TURNS = 2  # earlier messages read together with the message in the ``context`` reading
# The ``context`` reading is taken only when the passage it answers from is among the message's
# own best ``ANCHOR_RANK`` passages (the message itself points there), or the message alone was refused.
ANCHOR_RANK = 5
BARE_WORDS = 4  # a phrase up to this many words, not shaped as a question, may lean on the conversation
# A follow-up-shaped message answered alone at least this surely stays alone. Chosen as 0.9 when
# the verifier's plain-text threshold was 0.48; 0.768 is the same verifier score (0.59) under the
# 0.53 threshold (p is a logistic of score - threshold over 0.05), so the resolver reads as before.
ALONE_CONFIDENT = 0.768
# A context reading that narrows a message answered alone must itself be answered this surely
# (p_answer; 0.5 to 0.88 scored alike on the five tuning files under the 0.48 threshold,
# docs/dialogue.md; 0.8 then, the same score is 0.595 now).
NARROW_CONFIDENT = 0.595
NARROW_WORDS = 10  # a message up to this many words may be narrowed by the conversation (narrows; docs/dialogue.md)
# A topic-naming message refused alone is read in context when the context answer's passage
# holds this share of its topical words (all of them: one shared word such as "ship" is no evidence).
TOPIC_SHARE = 1.0
# "why not?": a message asking for a reason is answered in context only by a sentence that gives one.
WHY_RE = re.compile(r"^\W*(?:(?:and|but|so)\s+)?(?:why|how come|for what reason)\b", re.IGNORECASE)
REASON_RE = re.compile(
    r"\b(?:because|since|due to|as a result|so that|in order to|otherwise|might|for \w+ (?:reasons?|purposes?))\b",
    re.IGNORECASE,
)

# A context reading whose quoted sentences hold none of the message's own topical words is kept
# only when the message alone, re-read by the verifier, scores the answer's passage within this
# of its best passage (chosen on the tuning dialogues: answered follow-ups lie 0.00-0.04 below,
# uncovered ones 0.06-0.20 below; docs/dialogue.md).
OWN_MARGIN = 0.05
# What customers say for a word the policies use (stemmed as content_terms stems): "will I get my money
# back?" is answered by "... you will receive a full refund", "even if the mistake was yours?" by "... our error".
SAME_AS = (
    (re.compile(r"\b(?:money|cash) back\b|\breimburs\w*|\brepaid\b|\brepay\w*", re.IGNORECASE), "refund"),
    (re.compile(r"\bmistakes?\b|\bmess(?:ed)? up\b|\bscrew(?:ed)? up\b", re.IGNORECASE), "error"),  # "... at our error"
)
# A context reading that misses the duration or amount asked is asked again without the passage
# it found, up to this many times (one more batch of one question each; 2 and 3 scored alike on
# the tuning dialogues, 1 one answer fewer: docs/dialogue.md).
REASKS = 2

AskMany = Callable[..., Sequence[Answer | QuestionError]]


@dataclass(frozen=True)
class Reading:
    text: str
    kind: str  # "alone", "slot" or "context"
    value: str | None = None  # the slot a "slot" reading swapped in ("Asia")
    slot_kind: str | None = None  # the kind of that slot ("place"; slots.KINDS)


def check_history(history: Sequence[str], max_chars: int) -> list[str]:
    """The history as a list of strings, or a QuestionError naming the bad item."""
    if isinstance(history, str) or not isinstance(history, Sequence):
        raise QuestionError(f"history must be a list of strings, got {type(history).__name__}")
    if len(history) > MAX_HISTORY:
        raise QuestionError(f"history holds {len(history)} messages; at most {MAX_HISTORY} are accepted")
    out = []
    for i, item in enumerate(history):
        if not isinstance(item, str):
            raise QuestionError(f"history item {i} must be a string, got {type(item).__name__}")
        if not item.strip():
            raise QuestionError(f"history item {i} is empty")
        if len(item) > max_chars:
            raise QuestionError(f"history item {i} is {len(item)} characters long; the limit is {max_chars}")
        out.append(item.strip())
    return out


def frame_of(history: Sequence[str]) -> str | None:
    """The most recent earlier message that is a question of its own (not a fragment such as
    "and to Europe?"): the one whose slots a fragment swaps."""
    for message in reversed(history):
        if fragment(message) is None:
            return message
    return None


def readings(message: str, history: Sequence[str]) -> list[Reading]:
    """The standalone readings of ``message`` after ``history`` (oldest first); ``alone`` first."""
    out = [Reading(message, "alone")]
    if not history:
        return out
    frame = frame_of(history)
    found = fragment_slot(message, frame) if frame is not None else None
    if found is not None:
        out.append(Reading(swap(frame, *found), "slot", value=found[1], slot_kind=found[0].kind))
    out.append(Reading(" ".join([*history[-CONTEXT_TURNS:], message]), "context"))
    return out


def repeats(answer: Answer, previous: Answer | QuestionError | None) -> bool:
    """Whether ``answer`` quotes nothing that ``previous`` (the last message's own answer) did not, and
    opens as it did: "will I get my money back for it?" after "I want to cancel my order." opens with
    the refund sentence that the cancellation answer quoted third, which answers something new."""
    if not (isinstance(previous, Answer) and previous.answered and previous.sentences and answer.sentences):
        return False
    said = {s.text for s in previous.sentences}
    return {s.text for s in answer.sentences} <= said and answer.sentences[0].text == previous.sentences[0].text


def choose(
    message: str,
    options: Sequence[Reading],
    answers: Sequence[Answer | QuestionError],
    previous: Answer | QuestionError | None = None,
    topic: Answer | QuestionError | None = None,
) -> int:
    """The index of the reading to answer with (0, the alone reading, unless the message leans on
    the conversation). ``previous``: the last earlier message's own answer, when known; ``topic``: the
    last earlier answer that found a passage (``previous`` when not given)."""
    topic = previous if topic is None else topic
    alone = answers[0]
    if not isinstance(alone, Answer) or alone.refusal_reason == "instruction" or len(options) == 1:
        return 0
    by_kind = {r.kind: i for i, r in enumerate(options) if isinstance(answers[i], Answer)}
    if "slot" in by_kind:
        slot = by_kind["slot"]
        # "what about silver?" after "Do you sell gold rings?": the swapped question is refused,
        # the message alone is answered from a passage naming silver: the message stands alone.
        value = options[slot].value or ""
        terms = content_terms(value)
        own = alone.answered and alone.citations and terms and terms <= content_terms(alone.citations[0].text)
        return 0 if not answers[slot].answered and own else slot
    strength = followup_strength(message)
    ctx = by_kind.get("context")
    if ctx is None:
        return 0
    if not strength:
        # A message naming a topic of its own ("what happens to the warranty if I do?") is read in
        # context only when it is refused alone and the context answer's passage names that topic,
        # or, for a bare phrase that is no question of its own ("time limit?", "encryption
        # strength?"), is among the message's own best passages.
        if alone.answered and narrows(message, options[ctx].text, alone, answers[ctx]):
            return ctx
        if alone.answered or not answers[ctx].answered:
            return 0
        # Or it asks a duration, amount or reason that the conversation's passage states ("is there a time limit?").
        named = names_topic(message, answers[ctx]) or states_asked(message, answers[ctx], topic)
        return ctx if named or (bare_phrase(message) and anchored(answers[ctx], alone)) else 0
    if alone.answered and alone.evidence.get("p_answer", alone.confidence) >= ALONE_CONFIDENT:
        return 0
    answer = answers[ctx]
    if not answer.answered:
        # A follow-up the policies don't cover stays refused, unless the context reading's own best
        # passage is the one the message alone is answered from ("will it come off if I resize
        # it?" after "Is the jewelry plated?": the two messages together are refused, the message
        # alone is answered from the resizing passage that the context reading ranks first too).
        return 0 if alone.answered and alone.citations and top_passage(answer) == alone.citations[0].id else ctx
    if alone.answered and alone.citations and alone.citations[0].id != answer.citations[0].id and repeats(answer, previous):
        # "and how long before it ships?" after a delivery question: read in context it only
        # repeats the delivery answer; alone it is answered from another passage: something new.
        return 0
    # A message that says it leans on the conversation ("and ...", "it") and is refused alone is
    # read in context; a merely short one only where its own best passages include the answer's.
    return ctx if anchored(answer, alone) or (not alone.answered and strength == 2) else 0


def top_passage(answer: Answer) -> str | None:
    """The id of the passage ``answer`` ranks first among those it retrieved, or None."""
    return answer.retrieved[0].passage.id if answer.retrieved else None


def narrows(message: str, context: str, alone: Answer, answer: Answer) -> bool:
    """A short message answered alone from one passage, and in context, confidently, from another
    among its own best that holds more of the conversation's topical words ("who pays for
    shipping?" after "I want to return an item."): the conversation says which shipping."""
    if len(WORD_RE.findall(message)) > NARROW_WORDS or not (answer.answered and alone.citations and answer.citations):
        return False
    unsure = answer.evidence.get("p_answer", answer.confidence) < NARROW_CONFIDENT
    if unsure or answer.citations[0].id == alone.citations[0].id:
        return False
    said = content_terms(" ".join(topical_words(context[: len(context) - len(message)])))
    ctx_terms = content_terms(answer.citations[0].text) & said
    own_terms = content_terms(alone.citations[0].text) & said
    return anchored(answer, alone) and len(ctx_terms) > len(own_terms)


def narrowed(message: str, alone: Answer | QuestionError, answer: Answer, context: str) -> bool:
    """Whether the context reading (``context``, answered ``answer``) was taken by :func:`narrows`:
    the message names a topic of its own and was answered alone too, from a passage naming less of
    the conversation. The own-words gap measures how far the message alone ranks the context
    passage below its own best, which is what narrowing overrules ("who pays the postage?" after
    a return: neither passage says "postage"), so it is not checked then."""
    return (
        isinstance(alone, Answer) and alone.answered and not followup_strength(message)
        and narrows(message, context, alone, answer)
    )


def anchored(answer: Answer, alone: Answer) -> bool:
    """Whether ``answer``'s first passage is among the message's own ANCHOR_RANK best (``alone``)."""
    top = {h.passage.id for h in alone.retrieved[:ANCHOR_RANK]}
    return bool(answer.citations) and answer.citations[0].id in top


def bare_phrase(message: str) -> bool:
    """A short phrase that is no question of its own ("time limit?", "all of your pieces?"): at
    most BARE_WORDS words, not opening with a question word, an auxiliary or a pronoun."""
    return len(WORD_RE.findall(message)) <= BARE_WORDS and not QUESTION_START_RE.match(message)


def names_topic(message: str, answer: Answer) -> bool:
    """Whether the answer's first passage holds TOPIC_SHARE of the topical words of ``message``
    (stemmed): the conversation's passage speaks of what the message names."""
    words = content_terms(" ".join(topical_words(message)))
    if not words or not answer.citations:
        return False
    return len(words & content_terms(answer.citations[0].text)) >= TOPIC_SHARE * len(words)


def unnamed_slot(reading: Reading, answer: Answer) -> bool:
    """A swapped-in slot that none of the answer's passages names (nor a region holding it), where they
    name others of its kind: delivery times listed for Europe and Asia say nothing of Brazil, while
    "For international orders, duties ... may apply" names no country and holds for Norway as for Brazil."""
    if reading.value is None or any(mentions(c.text, reading.value) for c in answer.citations):
        return False
    return reading.slot_kind is None or any(find_slots(c.text, reading.slot_kind) for c in answer.citations)


def unanswered_kind(message: str, answer: Answer) -> bool:
    """The message asks for a duration or an amount ("how long will it take?") and no sentence
    quoted from the answer's first passage states one: the conversation's topic was found, not
    what the message asks of it."""
    kinds = question_types(message) & {"duration", "amount"}
    if not kinds or not answer.citations:
        return False
    first = [s.text for s in answer.sentences if s.passage_id == answer.citations[0].id]
    return not any(SENTENCE_TRAITS[k].search(text) for text in first for k in kinds)


def states_asked(message: str, answer: Answer, previous: Answer | QuestionError | None) -> bool:
    """The message asks for a duration, an amount or a reason, and the answer states one (a duration or
    amount in a sentence of its first passage, a reason anywhere) from a passage the last message was
    answered from (``previous``), the conversation's own: "how long do I have to report it?" after "My
    necklace arrived damaged." is answered by "... a quality guarantee of up to 7 days" from the
    damaged-items passage, though it never says "report"; "when will the money be back?" after a
    cancellation question, read in context, finds the returns passage's "10 days": not the conversation's."""
    if not (isinstance(previous, Answer) and previous.answered and answer.citations
            and answer.citations[0].id in {c.id for c in previous.citations}):  # fmt: skip
        return False
    if WHY_RE.match(message):
        return not gives_no_reason(message, answer)
    kinds = question_types(message) & {"duration", "amount"}
    return bool(kinds) and not unanswered_kind(message, answer)


def gives_no_reason(message: str, answer: Answer) -> bool:
    """The message asks why ("why not?") and no quoted sentence gives a reason: the policy is
    stated, its reason is not."""
    return bool(WHY_RE.match(message)) and not any(REASON_RE.search(s.text) for s in answer.sentences)


def own_gap(message: str, answer: Answer, alone: Answer | QuestionError) -> float | None:
    """How far below its best passage the message ``alone`` scores the answer's first passage
    (verifier scores; retriever scores where no verifier re-read the hits; inf when it did not
    retrieve it), when the message names words of its own and no sentence quoted in ``answer``
    holds one (stemmed); else None (nothing to check)."""
    words = content_terms(" ".join(topical_words(message)))
    if not words or not answer.citations or not isinstance(alone, Answer) or not alone.retrieved:
        return None
    words |= {term for rx, term in SAME_AS if rx.search(message)}
    if any(words & content_terms(s.text) for s in answer.sentences):
        return None
    if any(mentions(s.text, slot.text) for slot in find_slots(message) for s in answer.sentences):
        return None  # a slot it names is there, by a name or a region holding it ("Ireland": "Europe")
    scores = {h.passage.id: h.verified if h.verified is not None else h.score for h in alone.retrieved}
    own = scores.get(answer.citations[0].id)
    return float("inf") if own is None else max(scores.values()) - own


def off_topic(message: str, answer: Answer, alone: Answer | QuestionError) -> bool:
    """The conversation's passage was found, not what the message asks of it: the message names
    words of its own that no quoted sentence holds, and alone it ranks that passage more than
    OWN_MARGIN below its best ("is it hypoallergenic?" after "What is your jewelry made of?")."""
    gap = own_gap(message, answer, alone)
    if gap is None:
        return False
    # "is it nickel free?" after a materials question: alone, the message finds the same passage
    # (gap 0) but is answered only unsurely; the conversation adds no evidence that it says so.
    return gap > OWN_MARGIN or same_unsure(answer, alone)


def same_unsure(answer: Answer, alone: Answer | QuestionError) -> bool:
    """Whether the message ``alone`` was answered from the same first passage as ``answer``, with
    ``p_answer`` below ALONE_CONFIDENT."""
    return (
        isinstance(alone, Answer) and alone.answered and bool(alone.citations) and bool(answer.citations)
        and alone.citations[0].id == answer.citations[0].id
        and alone.evidence.get("p_answer", alone.confidence) < ALONE_CONFIDENT
    )


def decide(
    message: str, options: Sequence[Reading], answers: Sequence[Answer | QuestionError], pick: int | None = None,
    previous: Answer | QuestionError | None = None, topic: Answer | QuestionError | None = None,
) -> Answer:
    """The answer to give: the chosen reading's (``pick``, else :func:`choose`'s), refused as
    ``not_stated`` when it misses what the message asks (a slot no passage names, a duration,
    amount or reason no sentence states, a context reading off the message's own words unless the
    conversation's passage states what it asks). ``previous`` and ``topic``: as :func:`choose` reads them."""
    topic = previous if topic is None else topic
    pick = choose(message, options, answers, previous, topic) if pick is None else pick
    answer = answers[pick]
    if pick == 0:
        return offer(message, answer)
    reading = options[pick]
    if answer.answered and (
        unnamed_slot(reading, answer)
        or unanswered_kind(message, answer)
        or gives_no_reason(message, answer)
        or (reading.kind == "context" and off_topic(message, answer, answers[0])
            and not narrowed(message, answers[0], answer, reading.text)
            and not states_asked(message, answer, topic))
    ):
        # "what about Brazil?" after a delivery question: the passage gives delivery times, but
        # never for Brazil (nor South America); "how long will it take?" after a resizing
        # question, answered with no duration; "why not?" after "Do you accept cash?": the policies
        # don't say; "is it hypoallergenic?" after a materials question: the passage never says.
        answer = refuse(
            answer.question, answer.support_contact, confidence=answer.confidence, reason="not_stated",
            hits=answer.retrieved, evidence=answer.evidence, related=answer.citations[:1],
        )
    return replace(answer, question=answers[0].question, resolved_question=reading.text)


def converse(ask_many: AskMany, message: str, history: Sequence[str] = (), *, leave_out: Collection[str] = ()) -> Answer:
    """Answer ``message`` read in its conversation (``history``: the customer's earlier messages,
    oldest first). Without history this is exactly the message asked alone (plus a clarifying
    reply to a vague bare topic, as always).

    Raises:
        QuestionError: the message cannot be asked (empty, too long).
    """
    options = readings(message, history)
    # The earlier messages read in context are asked too (same batch): what the last one was answered
    # (``previous``) tells whether a context reading says anything new; the last of them answered from a
    # passage (``topic``) says which passage the conversation is about ("I think it was like that in the
    # box" finds none; "my earrings came with a bent post" before it does).
    earlier = list(history[-CONTEXT_TURNS:])
    asked = ask_many([r.text for r in options] + earlier, leave_out=leave_out)
    answers, said = asked[: len(options)], asked[len(options) :]
    previous = said[-1] if said else None
    found = [a for a in said if isinstance(a, Answer) and a.answered]
    topic = found[-1] if found else previous
    if isinstance(answers[0], QuestionError):
        raise answers[0]
    pick = choose(message, options, answers, previous, topic)
    answer = answers[pick]
    if pick and answer.answered and not unnamed_slot(options[pick], answer) and unanswered_kind(message, answer):
        # "how fast do you reply?" after an email question, read in context, found the live-chat
        # passage (no duration): the same reading without that passage may find the one stating it
        # (after "How do I contact support?" it finds "Contact Support", then the live-chat passage,
        # then the one stating "5-20 hours").
        skipped = [*leave_out]
        for _ in range(REASKS):
            skipped.append(answer.citations[0].id)
            again = ask_many([options[pick].text], leave_out=skipped)[0]
            if not (isinstance(again, Answer) and again.answered):
                break
            if not unanswered_kind(message, again):
                answers = [*answers[:pick], again, *answers[pick + 1 :]]
                break
            answer = again
    return decide(message, options, answers, pick, previous, topic)
