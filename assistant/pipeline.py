"""The assistant: corpus -> index -> retriever -> cited answer (or refusal), and agent drafts."""

from __future__ import annotations

import time
import unicodedata
from dataclasses import replace
from pathlib import Path
from typing import Callable

from . import answer as answer_mod
from .answer import AnswerConfig
from .draft import compose_draft
from .embeddings import Encoder, SentenceTransformerEncoder
from .errors import QuestionError
from .index import BuildStats, Index, open_index
from .retrieval import RetrievalConfig, Retriever
from .schema import Answer, Draft

MAX_QUESTION_CHARS = 2000


def clean_question(question: str, *, max_chars: int = MAX_QUESTION_CHARS) -> str:
    """Normalise a question; raise QuestionError when nothing usable is left or it is too long."""
    if not isinstance(question, str):
        raise QuestionError(f"question must be text, got {type(question).__name__}")
    if len(question) > max_chars * 4:
        raise QuestionError(f"question is too long ({len(question)} characters; the limit is {max_chars})")
    # Drop control characters (NUL included) but keep line breaks as spaces.
    text = "".join(" " if ch in "\n\r\t" else ch for ch in question if unicodedata.category(ch)[0] != "C" or ch in "\n\r\t")
    text = " ".join(text.split())
    if not text:
        raise QuestionError("the question is empty")
    if len(text) > max_chars:
        raise QuestionError(f"question is too long ({len(text)} characters; the limit is {max_chars})")
    return text


class Assistant:
    """Owns a loaded index, the encoder and the retriever; ``ask`` and ``draft`` answer questions."""

    def __init__(
        self,
        index: Index,
        encoder: Encoder,
        *,
        retrieval: RetrievalConfig | None = None,
        answer: AnswerConfig | None = None,
        top_k: int = 10,
    ) -> None:
        self.index = index
        self.encoder = encoder
        self.retriever = Retriever(index, encoder, retrieval)
        self.answer_config = answer or AnswerConfig()
        self.top_k = top_k
        self.contact = answer_mod.find_support_contact(index.passages)

    @classmethod
    def open(
        cls,
        corpus: list[str | Path],
        index_dir: str | Path,
        *,
        model: str | Path | None = None,
        encoder: Encoder | None = None,
        rebuild: bool = False,
        retrieval: RetrievalConfig | None = None,
        answer: AnswerConfig | None = None,
        progress_factory: Callable[[int], Callable[[int], None]] | None = None,
        log: Callable[[str], None] | None = None,
    ) -> tuple["Assistant", BuildStats]:
        """Open (building or refreshing as needed) the index for ``corpus`` and wrap it."""
        encoder = encoder or SentenceTransformerEncoder(model)
        index, stats = open_index(corpus, index_dir, encoder, rebuild=rebuild, progress_factory=progress_factory, log=log)
        return cls(index, encoder, retrieval=retrieval, answer=answer), stats

    def ask(self, question: str) -> Answer:
        """Answer ``question`` from the policies, or refuse and point to human support."""
        t0 = time.perf_counter()
        q = clean_question(question)
        qvec = self.retriever.embed(q)
        hits = self.retriever.search(q, self.top_k, qvec=qvec)
        cfg = self.answer_config
        top = hits[0].score if hits else 0.0
        sentence_scores = {
            h.passage.id: self.retriever.sentence_scores(qvec, h.passage.id)
            for h in hits[: cfg.max_passages]
            if h.score >= top - cfg.passage_margin
        }
        result = answer_mod.compose(q, hits, sentence_scores, self.contact, cfg)
        return replace(result, question=q, latency_ms=(time.perf_counter() - t0) * 1000)

    def draft(self, message: str, *, customer_name: str | None = None, agent_name: str | None = None) -> Draft:
        """A reply draft for a support agent answering ``message``."""
        return compose_draft(self.ask(message), customer_name=customer_name, agent_name=agent_name)
