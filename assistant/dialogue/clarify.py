"""A vague message ("refund", "shipping", "my order") whose best passages span several sections
gets a short reply offering those sections' titles instead of a guess."""

from __future__ import annotations

import re
from dataclasses import replace

from assistant.schema import Answer

# Words that carry no topic: a message made of at most MAX_TOPIC_WORDS others is a bare topic.
FILLER = frozenset(
    "a an the my our your me i you we it its this that of for about on to with and or please help info "
    "information question questions hi hello hey re regarding".split()
)
QUESTION_RE = re.compile(
    r"^\W*(?:who|what|when|where|why|how|which|can|could|do|does|did|is|are|was|were|will|would|should|may|must|am|have|has)\b",
    re.IGNORECASE,
)
WORD_RE = re.compile(r"[\w'-]+")
MAX_TOPIC_WORDS = 2
MAX_WORDS = 3
# Sections among the TOPIC_HITS best passages scoring within TOPIC_MARGIN of the best are offered
# (chosen on a handful of bare topics on the bundled corpus: "refund" and "my order" span two
# sections at 0.13 and 0.18 below the best; "shipping", "returns", "payment" stay in one).
TOPIC_HITS = 5
TOPIC_MARGIN = 0.2
MAX_TOPICS = 3
CLARIFY_TEXT = "Could you tell me a bit more? Your question could be about:"


def is_vague(message: str) -> bool:
    """A bare topic: at most three words, at most two of them meaningful, and not a question."""
    words = WORD_RE.findall(message)
    topical = [w for w in words if w.lower() not in FILLER]
    return 0 < len(topical) <= MAX_TOPIC_WORDS and len(words) <= MAX_WORDS and not QUESTION_RE.match(message)


def topics(answer: Answer) -> list[str]:
    """The section titles of the best passages within TOPIC_MARGIN of the best (ranked), at most MAX_TOPICS."""
    hits = answer.retrieved
    if not hits:
        return []
    best = hits[0].score
    titles: list[str] = []
    for hit in hits[:TOPIC_HITS]:
        if hit.score < best - TOPIC_MARGIN:
            break
        if hit.passage.title not in titles:
            titles.append(hit.passage.title)
    return titles[:MAX_TOPICS]


def option_question(message: str, title: str) -> str:
    """The question a chosen topic sends: a question of its own, so it is answered, not clarified again."""
    return f"What does the {title} section say about {message.strip().rstrip('?.!')}?"


def offer(message: str, answer: Answer) -> Answer:
    """``answer``, or for a vague message on the policies' topics (one they would answer) whose
    best passages span two or more sections, a reply offering them (``refusal_reason``
    "clarify", ``clarify`` the section titles). Messages the policies don't cover stay refused."""
    if not answer.answered or not is_vague(message) or answer.evidence.get("contact"):
        return answer  # a channel named bare ("email?") asks for it: answered from the contact passages
    titles = topics(answer)
    if len(titles) < 2:
        return answer
    text = f"{CLARIFY_TEXT} {'; '.join(titles)}."
    return replace(
        answer, answered=False, answer=text, citations=[], sentences=[], refusal_reason="clarify",
        clarify=titles, related=[],
    )
