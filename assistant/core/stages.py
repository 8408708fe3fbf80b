"""The answer path's stages: clean -> guard -> retrieve -> rerank -> decide -> compose.

Each stage is a small object whose settings are checked in its constructor and which has one
verb, ``run``; :class:`assistant.core.pipeline.Assistant` calls them in that order. Retrieval
is :class:`assistant.core.retrieval.Retriever` (``search``) and composition is
:func:`assistant.core.answer.compose`.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import replace

import numpy as np

from assistant.core.refusal import RefusalModel, features
from assistant.core.retrieval import Retriever
from assistant.errors import ConfigError, QuestionError
from assistant.models.verifier import Verifier
from assistant.schema import Hit

MAX_QUESTION_CHARS = 2000
VERIFY_CANDIDATES = 40  # passages the verifier re-reads (its margin needs more than the top few)

# Requests to change the assistant's behaviour rather than questions about the store.
INSTRUCTION_ATTACK_RE = re.compile(
    r"\b(?:ignore|disregard|forget|override|bypass)\b[^.?!]{0,40}\b(?:instructions?|rules?|prompts?|guidelines?|polic(?:y|ies)|programming|restrictions?)\b"
    r"|\byou are now\b|\bact as\b|\bpretend (?:to be|you(?:'re| are))\b|\bsystem prompt\b|\bjailbreak\b|\bdeveloper mode\b"
    r"|\broleplay as\b|\bDAN\b",
    re.I,
)


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
    """Spot messages that try to change the assistant's rules instead of asking about the store.

    It runs first, before any model: such a message is refused without being encoded.
    """

    def __init__(self, pattern: re.Pattern[str] = INSTRUCTION_ATTACK_RE) -> None:
        if not isinstance(pattern, re.Pattern):
            raise ConfigError(f"pattern must be a compiled regular expression, got {type(pattern).__name__}")
        self.pattern = pattern

    def run(self, question: str) -> bool:
        """True when ``question`` is an instruction to the assistant (to be refused)."""
        return bool(self.pattern.search(question))


def is_instruction_attack(question: str) -> bool:
    return InstructionGuard().run(question)


class Reranker:
    """The verifier re-reads the retriever's candidates and ranks them again.

    Each hit gets the verifier's cosine (``verified``) and a new score: that cosine plus the
    lexical term the retriever added (``hit.lexical_term``): the stronger model orders the
    candidates the fast one found (StackFAQ hit@1 0.963 -> 0.978; docs/retrieval.md).
    """

    def __init__(self, verifier: Verifier, passage_index: Mapping[str, int], *, candidates: int = VERIFY_CANDIDATES):
        if candidates <= 0:
            raise ConfigError(f"candidates must be > 0, got {candidates}")
        self.verifier = verifier
        self.passage_index = passage_index
        self.candidates = candidates

    def run(self, query: str, hits: list[Hit], qvec: np.ndarray | None = None) -> list[Hit]:
        """The hits re-ranked; ``qvec``: the verifier's vector of ``query`` when the caller has it."""
        if not hits:
            return hits
        qvec = self.verifier.embed(query) if qvec is None else qvec
        scores = self.verifier.passage_scores(qvec, [self.passage_index[h.passage.id] for h in hits])
        verified = [
            replace(h, verified=float(v), score=float(v) + h.lexical_term) for h, v in zip(hits, scores)
        ]
        return sorted(verified, key=lambda h: -h.score)


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
