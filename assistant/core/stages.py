"""The answer path's stages: clean -> guard -> retrieve -> rerank -> decide -> compose.

Each stage is a small object whose settings are checked in its constructor and which has one
verb, ``run``; :class:`assistant.core.pipeline.Assistant` calls them in that order. Retrieval
is :class:`assistant.core.retrieval.Retriever` (``search``) and composition is
:func:`assistant.core.answer.compose`.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace

import numpy as np

from assistant.core.refusal import RefusalModel, features
from assistant.core.retrieval import Retriever, encoder_text
from assistant.core.sentences import content_terms
from assistant.errors import ConfigError, QuestionError
from assistant.models.verifier import Verifier
from assistant.schema import Hit, Passage

MAX_QUESTION_CHARS = 2000
VERIFY_CANDIDATES = 40  # passages the verifier re-reads (its margin needs more than the top few)

# Requests to change the assistant's behaviour rather than questions about the store. Each
# alternative needs the words aimed at the assistant itself ("ignore YOUR instructions", "act as
# an unrestricted AI", "DAN mode"): "If I forget my password, what are the rules for guests?",
# "Does the clasp act as a safety lock?" and "Hi, I'm Dan" are customers, not attacks.
_TARGETS = r"(?:instructions?|rules?|prompts?|guidelines?|polic(?:y|ies)|programming|restrictions?|directives?)"
INSTRUCTION_ATTACK_RE = re.compile(
    r"\b(?:ignore|disregard|forget|override|bypass)\s+(?:all\s+|any\s+)?(?:of\s+)?"
    r"(?:your|the|these|those|its|previous|prior|above|earlier|system|store|safety)\s+"
    r"(?:(?:previous|prior|above|earlier|system|store|safety|original|hidden|current)\s+)*" + _TARGETS + r"\b"
    r"|\b(?:ignore|disregard|forget)\s+(?:all|everything)\s+(?:above|before|previous|prior|you\s+were\s+told)\b"
    r"|\byou are now\b|\bfrom now on,? you\b"
    r"|\b(?:act|behave|respond)\s+as\s+(?:if\s+you\s+(?:are|were)\s+|an?\s+|the\s+|my\s+)?"
    r"(?:unrestricted|unfiltered|jailbroken|admin\w*|developer|different|new|evil|store\s+manager|manager|owner|ai|bot|chatbot|dan)\b"
    r"|\bpretend (?:to be|you(?:'re| are))\b|\bsystem prompt\b|\bjailbreak\w*\b|\bdeveloper mode\b"
    # claimed authority and orders ("As the system administrator I order you to ...", "New rule from
    # headquarters: ...", "Forget the FAQ.")
    r"|\bi\s+(?:hereby\s+)?(?:order|command|authori[sz]e|instruct|direct)\s+you\b"
    r"|\bnew\s+(?:rules?|polic(?:y|ies)|instructions?|directives?)\s+from\s+(?:the\s+)?(?:headquarters|hq|head office|management|owner|admin\w*|ceo|manager|developers?)\b"
    r"|\b(?:ignore|disregard|forget)\s+(?:the|your|this)\s+faqs?\b"
    r"|\broleplay as\b|\b(?:reveal|print|show|repeat)\s+(?:me\s+)?(?:your|the)\s+(?:hidden\s+|internal\s+|system\s+)*" + _TARGETS + r"\b",
    re.I,
)
# "DAN" only as the jailbreak persona, in capitals and with its usual context ("DAN mode", "you are DAN").
DAN_RE = re.compile(r"\bDAN\b(?=\s+(?i:mode|prompt|jailbreak))|\b(?i:you are|you're|become|be)\s+DAN\b")
QUESTION_START_RE = re.compile(
    r"^(?:do|does|did|is|are|can|could|will|would|how|what|whats|what's|when|where|who|why|which|should|may|if|"
    r"i|my|any|is there|are there)\b",
    re.I,
)
_SENTENCE_SPLIT_RE = re.compile(r"(?<=[.!?:;])\s+|\s+[-\u2013\u2014]\s+")


class Cleaner:
    """Normalise a raw question: control characters dropped, whitespace folded, length checked."""

    def __init__(self, max_chars: int = MAX_QUESTION_CHARS) -> None:
        if max_chars <= 0:
            raise ConfigError(f"max_chars must be > 0, got {max_chars}")
        self.max_chars = max_chars

    def run(self, question: str) -> str:
        """The cleaned question; raises QuestionError when nothing usable is left or it is too long."""
        max_chars = self.max_chars
        if not isinstance(question, str):
            raise QuestionError(f"question must be text, got {type(question).__name__}")
        if len(question) > max_chars * 4:
            raise QuestionError(f"question is too long ({len(question)} characters; the limit is {max_chars})")
        # Drop control characters (NUL included) but keep line breaks as spaces.
        text = "".join(
            " " if ch in "\n\r\t" else ch for ch in question if unicodedata.category(ch)[0] != "C" or ch in "\n\r\t"
        )
        text = " ".join(text.split())
        if not text:
            raise QuestionError("the question is empty")
        if len(text) > max_chars:
            raise QuestionError(f"question is too long ({len(text)} characters; the limit is {max_chars})")
        return text


def clean_question(question: str, *, max_chars: int = MAX_QUESTION_CHARS) -> str:
    """Normalise a question; raise QuestionError when nothing usable is left or it is too long."""
    return Cleaner(max_chars).run(question)


class InstructionGuard:
    """Separate instructions to the assistant from the store question a message may carry.

    It runs first, before any model. Answers are quoted verbatim from the policies, so nothing a
    message says can change what the assistant asserts: a message is refused as an instruction
    only when it carries no store question at all. "Ignore your rules. Can I cancel my order?"
    is answered as "Can I cancel my order?".
    """

    def __init__(self, pattern: re.Pattern[str] = INSTRUCTION_ATTACK_RE, persona: re.Pattern[str] = DAN_RE) -> None:
        for name, value in (("pattern", pattern), ("persona", persona)):
            if not isinstance(value, re.Pattern):
                raise ConfigError(f"{name} must be a compiled regular expression, got {type(value).__name__}")
        self.pattern = pattern
        self.persona = persona

    def is_instruction(self, text: str) -> bool:
        return bool(self.pattern.search(text) or self.persona.search(text))

    def run(self, question: str) -> str | None:
        """The store question to answer: ``question`` itself when it holds no instruction, the
        questions left once the instruction sentences are dropped, or None (refuse) when no
        question is left."""
        if not self.is_instruction(question):
            return question
        kept = [
            s for s in _SENTENCE_SPLIT_RE.split(question)
            if s.strip() and not self.is_instruction(s) and _is_question(s)
        ]  # fmt: skip
        return " ".join(kept) if kept else None


def _is_question(sentence: str) -> bool:
    text = sentence.strip()
    return len(text.split()) >= 3 and (text.endswith("?") or bool(QUESTION_START_RE.match(text)))


def is_instruction_attack(question: str) -> bool:
    """True when ``question`` carries no store question, only an instruction to the assistant."""
    return InstructionGuard().run(question) is None


class Reranker:
    """The verifier re-reads the retriever's candidates and ranks them again.

    Each hit gets the verifier's cosine (``verified``) and a new score: that cosine plus the
    lexical term the retriever added (``hit.lexical_term``): the stronger model orders the
    candidates the fast one found (StackFAQ hit@1 0.963 -> 0.978; docs/retrieval.md). With
    ``dense_weight`` w the cosine is ``(verified + w * dense) / (1 + w)``: both models' evidence,
    on the cosine scale the margins are set in.
    """

    def __init__(
        self, verifier: Verifier, passage_index: Mapping[str, int], *, candidates: int = VERIFY_CANDIDATES,
        learned_offsets: tuple[float, float] = (0.0, 0.0), dense_weight: float = 0.0, rank_share: float = 1.0,
    ) -> None:
        if candidates <= 0:
            raise ConfigError(f"candidates must be > 0, got {candidates}")
        self.verifier = verifier
        self.passage_index = passage_index
        self.candidates = candidates
        self.learned_offsets = learned_offsets  # as the retriever's (RetrievalConfig.offsets)
        self.rank_share = rank_share  # share of those offsets taken when ordering (RetrievalConfig.learned_rank_share)
        self.dense_weight = dense_weight  # share of the retriever's cosine added to the verifier's
        self._learned = bool(getattr(getattr(verifier, "index", None), "learned", ()))  # its index holds learned keys

    def run(self, query: str, hits: list[Hit], qvec: np.ndarray | None = None) -> list[Hit]:
        """The hits re-ranked; ``qvec``: the verifier's vector of ``query`` when the caller has it."""
        return self.run_many([query], [hits], None if qvec is None else [qvec])[0]

    def run_many(
        self, queries: list[str], hits: list[list[Hit]], qvecs: Sequence[np.ndarray] | None = None
    ) -> list[list[Hit]]:
        """``run`` for several queries, their encodings in one batch (or ``qvecs``, one per query)."""
        if len(queries) != len(hits) or (qvecs is not None and len(qvecs) != len(queries)):
            raise ValueError(f"{len(queries)} queries but {len(hits)} hit lists")
        todo = [i for i, h in enumerate(hits) if h]
        out = list(hits)
        if not todo:
            return out
        if qvecs is None:
            qvecs = dict(zip(todo, self.verifier.embed_many([encoder_text(queries[i]) for i in todo])))
        for i in todo:
            ids = [self.passage_index[h.passage.id] for h in hits[i]]
            if self._learned:
                scores, ranked = self.verifier.passage_scores(
                    qvecs[i], ids, learned_offsets=self.learned_offsets, rank_share=self.rank_share
                )
            else:
                scores = ranked = self.verifier.passage_scores(qvecs[i], ids)
            w = self.dense_weight
            verified = [replace(h, verified=float(v), score=(float(r) + w * h.dense) / (1 + w) + h.lexical_term)
                        for h, v, r in zip(hits[i], scores, ranked)]  # fmt: skip
            out[i] = sorted(verified, key=lambda h: -h.score)
        return out


def asks_its_title(p: Passage) -> bool:
    """An FAQ row, or a section headed by a question ("## Do you repair bikes?"): its sentences answer
    that question, so a title-prefixed sentence vector reads another question than the customer's."""
    return p.kind == "faq" or p.title.rstrip().endswith("?")


class StatedSentence:
    """The sentence route of an FAQ row (or a section headed by a question): the verifier's best cosine
    between a question asking an amount, a duration or a clock time and one answer sentence, read
    without its title, that states it.

    FAQ rows are matched on their question (and question + answer), so "Until what time do you
    serve dinner?" scores 0.44 against "What are your opening hours?" and is refused at the FAQ-row
    threshold, though the row's "dinner from 18:00 to 22:30" answers it (0.58 with the verifier); a
    section's sentences are indexed with its title, and under "## Do you repair bikes?" "how much does
    a basic service cost?" scores 0.43 against "A basic service costs 59 euros ...". These sentences
    are not in the verifier's index as they are read here, so the few needed are embedded when asked,
    and kept (``cache`` sentences, by text).
    """

    def __init__(self, verifier: Verifier, cache: int = 2048) -> None:
        self.verifier = verifier
        self.size = cache
        self.vectors: dict[str, np.ndarray] = {}

    def best(self, vq: np.ndarray, states: re.Pattern[str], candidates: Sequence[Hit],
             spans: Mapping[str, Sequence[tuple[int, int, float]]], query: str = "") -> float | None:  # fmt: skip
        """The best cosine with ``vq`` of a sentence that ``states`` matches, among those of the FAQ rows
        and question-headed sections of ``candidates`` (``spans``: each one's sentence (start, end, ...));
        None when none does. With ``query`` (the question), only a sentence that shares a content word
        with it counts: "What is the corkage fee?" is not answered by "A discretionary service charge
        of 12.5 percent is added to the bill." (an amount, of something else)."""
        asked = content_terms(query) if query else None
        texts = [h.passage.text[s:e] for h in candidates if asks_its_title(h.passage)
                 for s, e, *_ in spans.get(h.passage.id, ())]  # fmt: skip
        found = {t: self.vectors.get(t) for t in dict.fromkeys(texts)
                 if states.search(t) and (asked is None or asked & content_terms(t))}  # fmt: skip
        if not found:
            return None
        new = [t for t, v in found.items() if v is None]
        if new:  # a local copy: another thread may empty the cache meanwhile
            if len(self.vectors) + len(new) > self.size:
                self.vectors.clear()
            for t, v in zip(new, self.verifier.embed_many(new)):
                found[t] = self.vectors[t] = v
        return max(float(v @ vq) for v in found.values())


class Decider:
    """The answer-or-refuse decision: the refusal model's features for the ranked hits, and p(answerable)."""

    def __init__(self, model: RefusalModel, retriever: Retriever, passage_index: Mapping[str, int]) -> None:
        if not isinstance(model, RefusalModel):
            raise ConfigError(f"model must be a RefusalModel, got {type(model).__name__}")
        self.model = model
        self.retriever = retriever  # its BM25 index (built on first use) gives the coverage features
        self.passage_index = passage_index

    def features(self, query: str, hits: list[Hit]) -> dict[str, float]:
        return features(query, hits, self.retriever.lexical, self.passage_index)

    def run(self, query: str, hits: list[Hit]) -> tuple[float, dict[str, float]]:
        """(p_answer, evidence): the probability the question is answerable, and the features behind it."""
        evidence = self.features(query, hits)
        return self.model.probability(evidence), evidence


# A part asking about another case ("and if nobody is available?", "what if it was already shipped?") and a
# sentence stating one ("If we aren't available, ...").
CONDITIONAL_PART_RE = re.compile(r"^\W*(?:(?:and|but|so|or)\s+)?(?:what\s+|even\s+)?if\b|^\W*(?:and\s+)?(?:otherwise|if not)\b", re.I)
CONDITIONAL_SENTENCE_RE = re.compile(r"(?:^|[.!?]\s+)(?:If|Unless|Otherwise|In case)\b")


def section_neighbour(passages: Sequence[Passage], by_id: Mapping[str, int], passage: Passage, step: int = 1) -> Passage | None:
    """The paragraph ``step`` places after ``passage`` (-1: before it) in the same section of a text file
    (same document and title), or None."""
    at = by_id.get(passage.id)
    if passage.kind != "section" or at is None or not 0 <= at + step < len(passages):
        return None
    other = passages[at + step]
    return other if (other.doc_id, other.title, other.kind) == (passage.doc_id, passage.title, passage.kind) else None


def with_section_cases(
    passages: Sequence[Passage], by_id: Mapping[str, int], candidates: list[Hit], hits: Sequence[Hit],
    parts: Sequence[str] = (), gone: Collection[int] = (),
) -> list[Hit]:  # fmt: skip
    """``candidates`` (the passages an answer may quote, best first) with the paragraph of the best one's
    section that states another case of its rule: a part asking about another case ("and if nobody is
    available?") may quote the paragraph after the best passage when it states a case ("If we aren't
    available, please send an email ..."). (Its twin for yes/no questions, the one-sentence paragraph a
    section opens with, was measured and reverted: docs/retrieval.md, section 7, fifth pass.)

    A paragraph added is the retrieved hit when there is one (else scored 0); the sentence selector still
    decides what is quoted. ``gone``: positions of passages left out (never added).
    """
    if not candidates or not any(CONDITIONAL_PART_RE.match(p) for p in parts[1:]):
        return candidates  # the common case: no part asks about another case
    after = section_neighbour(passages, by_id, candidates[0].passage)
    if (after is None or by_id[after.id] in gone or any(c.passage.id == after.id for c in candidates)
            or not CONDITIONAL_SENTENCE_RE.search(after.text)):  # fmt: skip
        return candidates
    return [*candidates, next((h for h in hits if h.passage.id == after.id), Hit(after, 0.0))]
