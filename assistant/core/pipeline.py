"""The assistant: corpus -> index -> retriever -> cited answer (or refusal), and agent drafts."""

from __future__ import annotations

import time
import unicodedata
from dataclasses import replace
from pathlib import Path
from typing import Callable, Collection

import numpy as np

import assistant.core.answer as answer_mod
from assistant.core.answer import AnswerConfig, split_question
from assistant.core.corpus import resolve_files
from assistant.core.draft import compose_draft
from assistant.models.embeddings import MODEL_CACHE, Encoder, open_encoder
from assistant.errors import QuestionError
from assistant.index.store import BuildStats, Index, open_index
from assistant.core.retrieval import RetrievalConfig, Retriever
from assistant.core.refusal import FEATURES, RefusalModel
from assistant.schema import Answer, Draft, Hit
from assistant.core.spelling import TypoCorrector, model_vocabulary
from assistant.models.verifier import Verifier, open_verifier

MAX_QUESTION_CHARS = 2000
MAX_PARTS = 6  # parts of a multi-part question answered separately
VERIFY_CANDIDATES = 40  # passages the verifier re-reads (its margin needs more than the top few)


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
        refusal: RefusalModel | None = None,
        verifier: Verifier | None = None,
    ) -> None:
        self.index = index
        self.encoder = encoder
        self.retriever = Retriever(index, encoder, retrieval)
        self.answer_config = answer or AnswerConfig()
        self.top_k = top_k
        self.contact = answer_mod.find_support_contact(index.passages)
        self._corrector: TypoCorrector | None = None
        self.verifier = verifier
        self.verifier_missing: str | None = None  # why the default verifier is off (not installed), set by the CLI
        if refusal is None:
            refusal = (
                RefusalModel.default(self.answer_config.threshold) if verifier is None
                else RefusalModel.default_for(verifier.name)
            )  # fmt: skip
        self.refusal = refusal

    @property
    def verifier_name(self) -> str:
        return self.verifier.name if self.verifier is not None else "none"

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
        use_calibration: bool = True,
        backend: str = "onnx",
        verifier: str | Encoder | None = None,
    ) -> tuple["Assistant", BuildStats]:
        """Open (building or refreshing as needed) the index for ``corpus`` and wrap it.

        Without an explicit ``encoder``, ``backend="onnx"`` runs the model through its ONNX
        export kept in ``index_dir/models/`` (exported on first use, which imports torch
        once): opening an up-to-date index and answering then never imports torch.
        ``backend="torch"`` uses sentence-transformers. Both give the same vectors.

        ``verifier``: ``"mpnet"`` re-reads the candidates with the packaged all-mpnet-base-v2
        (assistant/verifier.py) for the answer-or-refuse decision; an Encoder does so with that
        model; None (the library default) or ``"none"`` decides on the retriever's cosines.
        """
        if encoder is None:
            resolve_files(corpus)  # a bad corpus path fails before any model export
            encoder = open_encoder(model, Path(index_dir) / MODEL_CACHE, backend=backend, log=log)
        index, stats = open_index(corpus, index_dir, encoder, rebuild=rebuild, progress_factory=progress_factory, log=log)
        checker = None
        if verifier is not None and verifier != "none":
            checker = open_verifier(
                corpus, index_dir, index, encoder=None if isinstance(verifier, str) else verifier,
                backend=backend, kind=verifier if isinstance(verifier, str) else "mpnet", rebuild=rebuild, progress_factory=progress_factory, log=log,
            )  # fmt: skip
        refusal = RefusalModel.load(Path(index_dir)) if use_calibration else None
        wanted = checker.name if checker is not None else "none"
        if refusal is not None and refusal.verifier != wanted:
            if log:
                log(f"refusal: the stored calibration was fitted with verifier {refusal.verifier!r}, not {wanted!r}; "
                    "using the default (run `assistant calibrate` again)")  # fmt: skip
            refusal = None
        return cls(index, encoder, retrieval=retrieval, answer=answer, refusal=refusal, verifier=checker), stats

    @property
    def corrector(self) -> TypoCorrector:
        if self._corrector is None:
            texts = [f"{p.title} {p.text}" for p in self.index.passages]
            self._corrector = TypoCorrector(texts, model_vocabulary(getattr(self.encoder, "path", None)))
        return self._corrector

    def verify(self, query: str, hits: list[Hit]) -> list[Hit]:
        """The hits re-read by the verifier (unchanged without one).

        Each hit gets the verifier's cosine, and the hits are ranked again by it plus the same
        lexical term the retriever added (``score - dense``): the stronger model orders the
        candidates the fast one found (StackFAQ hit@1 0.963 -> 0.978; docs/retrieval.md).
        """
        if self.verifier is None or not hits:
            return hits
        qvec = self.verifier.embed(query)
        scores = self.verifier.passage_scores(qvec, [self.index.by_id[h.passage.id] for h in hits])
        verified = [
            replace(h, verified=float(v), score=float(v) + (h.score - h.dense)) for h, v in zip(hits, scores)
        ]
        return sorted(verified, key=lambda h: -h.score)

    def evidence(self, query: str, hits: list[Hit]) -> dict[str, float]:
        """The refusal model's features for a (corrected) query and its ranked hits.

        ``dense`` and ``margin`` are the verifier's cosines when the hits carry them, else the
        retriever's.
        """
        if not hits:
            return {f: 0.0 for f in FEATURES}

        def cos(h: Hit) -> float:
            return h.verified if h.verified is not None else h.dense

        best = max(hits, key=cos)
        # The runner-up is the best passage under a *different* title: several answers to
        # one FAQ question (or passages of one section) agreeing is not ambiguity.
        others = [cos(h) for h in hits if h.passage.title != best.passage.title]
        lexical = self.retriever.lexical
        top = self.index.by_id[best.passage.id]
        return {
            "dense": cos(best),
            "margin": cos(best) - (max(others) if others else 0.0),
            "coverage": lexical.coverage(query),
            "coverage_top": lexical.coverage(query, top),
            "faq": 1.0 if best.passage.kind == "faq" else 0.0,
        }

    def features_for(self, question: str, *, leave_out: Collection[str] = ()) -> dict[str, float]:
        """The refusal model's features for a raw question (used by calibration)."""
        query = self.corrector.correct(clean_question(question))
        hits = self.retriever.search(query, self.candidates, exclude=self.passage_indices(leave_out))
        return self.evidence(query, self.verify(query, hits))

    @property
    def candidates(self) -> int:
        """Passages retrieved per question: the top_k shown, or more when a verifier re-reads them."""
        return max(self.top_k, VERIFY_CANDIDATES) if self.verifier is not None else self.top_k

    def passage_indices(self, ids: Collection[str]) -> np.ndarray | None:
        """Indices of the passages whose id or document id is in ``ids`` (None for no ids)."""
        if not ids:
            return None
        wanted = set(ids)
        return np.array(
            [i for i, p in enumerate(self.index.passages) if p.id in wanted or p.doc_id in wanted], dtype=np.int64
        )

    def ask(self, question: str, *, leave_out: Collection[str] = ()) -> Answer:
        """Answer ``question`` from the policies, or refuse and point to human support.

        ``leave_out`` (passage or document ids) answers as if those passages were not in the
        corpus: the eval harness asks answerable questions that way to see them refused.
        """
        t0 = time.perf_counter()
        exclude = self.passage_indices(leave_out)
        q = clean_question(question)
        query = self.corrector.correct(q)
        # Each part costs an encoding and a search: a 2,000-character question of 80+ parts took
        # seconds while holding the model, so parts past MAX_PARTS are answered only as the whole.
        parts = split_question(query)[:MAX_PARTS]
        texts = [query] + (parts if len(parts) > 1 else [])
        vecs = self.encoder.encode(texts)
        cfg = self.answer_config
        verified = self.verify(query, self.retriever.search(query, self.candidates, qvec=vecs[0], exclude=exclude))
        hits = verified[: self.top_k]
        top = hits[0].score if hits else 0.0
        candidates = [h for h in hits[: cfg.max_passages] if h.score >= top - cfg.passage_margin]
        part_vecs = vecs[1:]
        for part, pvec in zip(parts if len(parts) > 1 else [], part_vecs):
            found = self.retriever.search(part, 1, qvec=pvec, exclude=exclude)
            if not found:
                continue
            best = found[0]
            if best.dense >= cfg.threshold and best.passage.id not in {c.passage.id for c in candidates}:
                candidates.append(best)
        scores = {h.passage.id: self.retriever.sentence_scores(vecs[0], h.passage.id) for h in candidates}
        part_scores = [
            {h.passage.id: self.retriever.sentence_scores(pvec, h.passage.id) for h in candidates} for pvec in part_vecs
        ]
        evidence = self.evidence(query, verified)
        p_answer = self.refusal.probability(evidence)
        result = answer_mod.compose(q, hits, candidates, scores, self.contact, cfg, part_scores, p_answer, evidence)
        return replace(result, latency_ms=(time.perf_counter() - t0) * 1000)

    def draft(self, message: str, *, customer_name: str | None = None, agent_name: str | None = None) -> Draft:
        """A reply draft for a support agent answering ``message``."""
        return compose_draft(self.ask(message), customer_name=customer_name, agent_name=agent_name)
