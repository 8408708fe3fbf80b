"""The assistant: the answer path's stages in order, plus agent drafts.

clean -> guard -> retrieve -> rerank (verifier) -> decide (refusal model) -> compose
(assistant/core/stages.py holds the stages; docs/architecture.md draws them).
"""

from __future__ import annotations

import functools
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Callable, Collection

import numpy as np

from assistant.core import self_calibration
from assistant.core.answer import (
    NOT_STATED_CONFIDENCE,
    AnswerConfig,
    compose,
    refuse,
    split_question,
    stated_kind,
    yes_no_title,
)
from assistant.core.contact import answer_contact, contact_request, find_support_contact, lacks_channel, unstated_channel
from assistant.core.corpus import resolve_files
from assistant.core.draft import compose_draft
from assistant.core.refusal import RefusalModel
from assistant.core.retrieval import RetrievalConfig, Retriever, encoder_text
from assistant.core.self_calibration import SelfCalibration
from assistant.core.spelling import TypoCorrector, model_vocabulary, store_name
from assistant.core.stages import (
    MAX_QUESTION_CHARS,
    VERIFY_CANDIDATES,
    Cleaner,
    Decider,
    InstructionGuard,
    Reranker,
    StatedSentence,
    clean_question,
    with_section_cases,
)
from assistant.dialogue.clarify import is_vague
from assistant.dialogue.resolve import check_history, converse
from assistant.errors import QuestionError
from assistant.index.layout import IndexLayout
from assistant.index.store import BuildStats, Index, open_index
from assistant.learning.links import Link, StaleLink, check_links, load_links
from assistant.models.embeddings import Encoder
from assistant.models.onnx import open_encoder
from assistant.models.verifier import Verifier, kind_of, model_cache_root, open_verifier
from assistant.schema import Answer, Citation, Draft, Hit, Passage

__all__ = ["Assistant", "clean_question", "MAX_QUESTION_CHARS", "MAX_PARTS", "VERIFY_CANDIDATES"]

MAX_PARTS = 6  # parts of a multi-part question answered separately
# p(answerable) from the retriever alone at or above which the verifier is not asked: on every
# tuning set no question changes outcome at this cut, and 18-26% of questions skip the verifier
# (scripts/verifier_skip.py; docs/performance.md, "Skipping the verifier").
SKIP_VERIFIER_AT = 0.99


class Assistant:
    """Owns a loaded index, the encoder and the stages; ``ask`` and ``draft`` answer questions."""

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
        default_refusal: RefusalModel | None = None,
        skip_verifier_at: float | None = None,
    ) -> None:
        """``refusal`` decides answer or refuse; without it, ``default_refusal`` does, or else
        the default model for the verifier (RefusalModel.default_for).

        ``skip_verifier_at``: with a verifier, a question whose retriever-only evidence already
        gives p(answerable) >= this (under the ``--verifier none`` default model) is answered
        without asking the verifier, as ``--verifier none`` would answer it. None: always ask it.
        """
        if skip_verifier_at is not None and not 0.0 <= skip_verifier_at <= 1.0:
            raise ValueError(f"skip_verifier_at must be in [0, 1] or None, got {skip_verifier_at}")
        if top_k <= 0:
            raise ValueError(f"top_k must be > 0, got {top_k}")
        self.index = index
        self.encoder = encoder
        self.answer_config = answer or AnswerConfig()
        self.top_k = top_k
        self.contact = find_support_contact(index.passages)
        self._corrector: TypoCorrector | None = None
        self.verifier = verifier
        self._default_refusal = default_refusal
        self.verifier_missing: str | None = None  # why the default verifier is off (not installed), set by the CLI
        self.self_calibration: SelfCalibration | None = None  # set by ``open`` when it self-calibrated
        self.learned_path: Path | None = None  # the confirmed-links file, set by ``open`` (None: no links)
        self.links: list[Link] = []  # every link of that file as last read, stale ones included
        # The stages, in the order ``ask`` runs them.
        self.cleaner = Cleaner()
        self.guard = InstructionGuard()
        self.retriever = Retriever(index, encoder, retrieval)
        self.reranker = (
            Reranker(verifier, index.by_id, learned_offsets=self.retriever.config.offsets,
                     dense_weight=self.retriever.config.rerank_dense_weight,
                     rank_share=self.retriever.config.learned_rank_share)
            if verifier is not None else None
        )  # fmt: skip
        self.decider = Decider(refusal or self.default_refusal(), self.retriever, index.by_id)
        self.skip_verifier_at = skip_verifier_at if verifier is not None else None
        # How each question was decided: "skipped" (the retriever alone) or "verified" (the
        # verifier heard it); counted since opening (bench, scripts).
        self.verifier_use: Counter[str] = Counter()
        # The decision without the verifier, for the questions it is not asked about.
        self.fast_decider = Decider(RefusalModel.default_for("none"), self.retriever, index.by_id)
        self.stated = StatedSentence(verifier) if verifier is not None else None

    @property
    def refusal(self) -> RefusalModel:
        return self.decider.model

    @refusal.setter
    def refusal(self, model: RefusalModel) -> None:
        """A refusal model set after opening (a calibration, a replay) always hears the verifier."""
        self.decider = Decider(model, self.retriever, self.index.by_id)
        self.skip_verifier_at = None

    def default_refusal(self) -> RefusalModel:
        """The refusal model used without a calibration: the one given, else the default for this verifier."""
        return self._default_refusal or RefusalModel.default_for(self.verifier_name)

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
        default_refusal: RefusalModel | None = None,
        backend: str = "onnx",
        verifier: str | Encoder | None = None,
        self_calibrate: bool = False,
        skip_verifier_at: float | None = SKIP_VERIFIER_AT,
        learned: str | Path | None = None,
    ) -> tuple["Assistant", BuildStats]:
        """Open (building or refreshing as needed) the index for ``corpus`` and wrap it.

        Without an explicit ``encoder``, ``backend="onnx"`` runs the model through its ONNX
        export kept in ``index_dir/models/`` (exported on first use, which imports torch
        once): opening an up-to-date index and answering then never imports torch.
        ``backend="torch"`` uses sentence-transformers. Both give the same vectors.

        ``verifier``: ``"mpnet"`` re-reads the candidates with the packaged all-mpnet-base-v2
        (assistant/verifier.py) for the answer-or-refuse decision; an Encoder does so with that
        model; None (the library default) or ``"none"`` decides on the retriever's cosines.

        ``self_calibrate``: without a stored calibration or a ``default_refusal``, fit the
        default thresholds to the corpus's own leave-outs (assistant/core/self_calibration.py;
        stored with the index, fitted again when the corpus changes).

        ``skip_verifier_at``: see ``Assistant``; it applies only to the default refusal model
        (a stored calibration or a ``default_refusal`` always hears the verifier).

        ``learned``: a confirmed-links file (assistant/learning/links.py; a missing file holds no
        links): each usable link's question becomes an extra key of its passage, in both indexes.
        """
        if encoder is None:
            resolve_files(corpus)  # a bad corpus path fails before any model export
            # An export in the machine's model cache (made for another index) is copied, not made again.
            shared = model_cache_root() / "onnx"
            encoder = open_encoder(model, IndexLayout(index_dir).models, backend=backend, log=log, shared=shared)
        links = load_links(learned) if learned is not None else []
        index, stats = open_index(
            corpus, index_dir, encoder, rebuild=rebuild, progress_factory=progress_factory, log=log, links=links
        )
        checker = None
        if verifier is not None and verifier != "none":
            checker = open_verifier(
                corpus, index_dir, index, encoder=None if isinstance(verifier, str) else verifier,
                backend=backend, kind=verifier if isinstance(verifier, str) else kind_of(verifier), rebuild=rebuild, progress_factory=progress_factory, log=log,
            )  # fmt: skip
        refusal = RefusalModel.load(Path(index_dir)) if use_calibration else None
        wanted = checker.name if checker is not None else "none"
        if refusal is not None and refusal.verifier != wanted:
            if log:
                log(f"refusal: the stored calibration was fitted with verifier {refusal.verifier!r}, not {wanted!r}; "
                    "using the default (run `assistant calibrate` again)")  # fmt: skip
            refusal = None
        elif refusal is not None and checker is not None and refusal.verifier_fingerprint not in ("", checker.encoder.fingerprint):
            if log:
                log(f"refusal: the stored calibration was fitted on verifier vectors {refusal.verifier_fingerprint}, "
                    f"the index now holds {checker.encoder.fingerprint}; using the default (run `assistant calibrate` again)")
            refusal = None
        assistant = cls(
            index, encoder, retrieval=retrieval, answer=answer, refusal=refusal, verifier=checker,
            default_refusal=default_refusal,
            skip_verifier_at=skip_verifier_at if refusal is None and default_refusal is None else None,
        )  # fmt: skip
        assistant.learned_path = Path(learned) if learned is not None else None
        assistant.links = links
        if self_calibrate and use_calibration and default_refusal is None:
            # No gold set: the default thresholds, moved to fit the corpus's own leave-outs.
            fitted = self_calibration.ensure(assistant, Path(index_dir), log=log)
            assistant.self_calibration = fitted
            assistant._default_refusal = fitted.model(RefusalModel.default_for(assistant.verifier_name))
            if refusal is None and fitted.applied:
                assistant.refusal = assistant._default_refusal
        return assistant, stats

    def stale_links(self) -> list[StaleLink]:
        """The links of the learned file that are not used: their passage is gone or changed."""
        source = str(self.learned_path) if self.learned_path is not None else ""
        return check_links(self.links, self.index.passages, source=source)[1]

    @property
    def corrector(self) -> TypoCorrector:
        if self._corrector is None:
            texts = [f"{p.title} {p.text}" for p in self.index.passages]
            vocabulary = model_vocabulary(getattr(self.encoder, "path", None))
            self._corrector = TypoCorrector(texts, vocabulary, store=store_name(texts, self.contact.email, vocabulary))
        return self._corrector

    def refreshed(self, corpus: list[str | Path], index_dir: str | Path) -> tuple["Assistant", BuildStats]:
        """This assistant over the corpus as it is now: same encoder, settings and refusal model;
        only edited passages are embedded again (the server calls it when the files change)."""
        # rebuild=True: the caller saw the content change, whatever the files' stat says.
        links = load_links(self.learned_path) if self.learned_path is not None else []
        index, stats = open_index(corpus, index_dir, self.encoder, rebuild=True, links=links)
        verifier = self.verifier.refreshed(corpus, source=index) if self.verifier is not None else None
        fresh = Assistant(
            index, self.encoder, retrieval=self.retriever.config, answer=self.answer_config,
            top_k=self.top_k, refusal=self.refusal, verifier=verifier, default_refusal=self._default_refusal,
            skip_verifier_at=self.skip_verifier_at,
        )  # fmt: skip
        fresh.verifier_missing = self.verifier_missing
        fresh.learned_path, fresh.links = self.learned_path, links
        fresh.corrector  # built now, not by the first question after the refresh
        return fresh, stats

    @property
    def candidates(self) -> int:
        """Passages retrieved per question: the top_k shown, or more when a verifier re-reads them."""
        return max(self.top_k, self.reranker.candidates) if self.reranker is not None else self.top_k

    def passage_indices(self, ids: Collection[str]) -> np.ndarray | None:
        """Indices of the passages whose id or document id is in ``ids`` (None for no ids)."""
        if not ids:
            return None
        wanted = set(ids)
        return np.array(
            [i for i, p in enumerate(self.index.passages) if p.id in wanted or p.doc_id in wanted], dtype=np.int64
        )

    def verify(self, query: str, hits: list[Hit], qvec: np.ndarray | None = None) -> list[Hit]:
        """The hits re-read by the verifier (unchanged without one); ``qvec``: its vector of the query."""
        return self.reranker.run(query, hits, qvec) if self.reranker is not None else hits

    def verified_sentences(self, vq: np.ndarray, passage_id: str) -> list[tuple[int, int, float]]:
        """The verifier's (start, end, cosine) of each indexed sentence of one passage (empty when
        its sentences are not indexed, as for FAQ rows, or without a verifier)."""
        return self.verifier.sentence_scores(vq, passage_id) if self.verifier is not None else []

    def evidence(self, query: str, hits: list[Hit]) -> dict[str, float]:
        """The refusal model's features for a (corrected) query and its ranked hits."""
        return self.decider.features(query, hits)

    def features_for(self, question: str, *, leave_out: Collection[str] = ()) -> dict[str, float]:
        """The refusal model's features for a raw question (used by calibration)."""
        query = self.corrector.correct(self.cleaner.run(question))
        hits = self.retriever.search(query, self.candidates, exclude=self.passage_indices(leave_out))
        return self.decider.features(query, self.verify(query, hits))

    def features_many(
        self, questions: Sequence[str], leave_outs: Sequence[Collection[str]]
    ) -> list[dict[str, float]]:
        """``features_for`` of each question with its own ``leave_out``; each model encodes all
        the questions in one batch (the index-time self-calibration asks 120 at once)."""
        queries = [self.corrector.correct(self.cleaner.run(q)) for q in questions]
        qvecs = self.encoder.encode([encoder_text(q) for q in queries]) if queries else []
        hits = [
            self.retriever.search(q, self.candidates, qvec=v, exclude=self.passage_indices(left))
            for q, v, left in zip(queries, qvecs, leave_outs)
        ]
        if self.reranker is not None:
            hits = self.reranker.run_many(queries, hits)
        return [self.decider.features(q, h) for q, h in zip(queries, hits)]

    def ask(self, question: str, *, leave_out: Collection[str] = (), history: Sequence[str] = ()) -> Answer:
        """Answer ``question`` from the policies, or refuse and point to human support.

        ``leave_out`` (passage or document ids) answers as if those passages were not in the
        corpus: the eval harness asks answerable questions that way to see them refused.
        ``history``: the customer's earlier messages, oldest first; a follow-up ("what about
        Asia?") is answered as the standalone question it stands for (``resolved_question``;
        assistant/dialogue/resolve.py). A vague bare topic gets the sections to choose from.
        """
        history = check_history(history, MAX_QUESTION_CHARS)
        if not history:
            return converse(self.ask_many, question, history, leave_out=leave_out)
        # The readings of a follow-up are compared on the verifier's scores: it hears them all.
        return converse(functools.partial(self.ask_many, always_verify=True), question, history, leave_out=leave_out)

    def ask_many(
        self, questions: Sequence[str], *, leave_out: Collection[str] = (), always_verify: bool = False
    ) -> list[Answer | QuestionError]:
        """Answer several questions at once: the same answers as ``ask`` one by one, but each
        model encodes all of them in one batch (the server batches concurrent requests this way).
        ``always_verify``: the verifier hears every question, however decisive the retriever is.

        A question that cannot be asked (empty, too long) gets its QuestionError in its slot.
        """
        t0 = time.perf_counter()
        exclude = self.passage_indices(leave_out)
        out: list[Answer | QuestionError | None] = [None] * len(questions)
        asked: list[tuple[int, str, str, list[str]]] = []  # (slot, cleaned question, corrected query, parts)
        for slot, question in enumerate(questions):
            try:
                q = self.cleaner.run(question)
            except QuestionError as exc:
                out[slot] = exc
                continue
            store_question = self.guard.run(q)
            if store_question is None:
                out[slot] = refuse(q, self.contact, confidence=0.95, reason="instruction", hits=[])
                continue
            query = self.corrector.correct(store_question)
            # Each part costs an encoding and a search: a 2,000-character question of 80+ parts took
            # seconds while holding the model, so parts past MAX_PARTS are answered only as the whole.
            parts = split_question(query)[:MAX_PARTS]
            asked.append((slot, q, query, parts if len(parts) > 1 else []))
        if asked:
            texts = [encoder_text(t) for _, _, query, parts in asked for t in (query, *parts)]
            vecs = self.encoder.encode(texts)
            starts = np.cumsum([0] + [1 + len(parts) for _, _, _, parts in asked])
            found = [
                self.retriever.search(query, self.candidates, qvec=vecs[start], exclude=exclude)
                for (_, _, query, _), start in zip(asked, starts)
            ]  # fmt: skip
            queries = [query for _, _, query, _ in asked]
            # Decisive without the verifier: answered as `--verifier none` answers (Decider.run
            # of the retriever's hits), the verifier not asked. Everything else is re-read by it.
            fast: list[tuple[float, dict[str, float]] | None] = [None] * len(asked)
            if self.skip_verifier_at is not None and not always_verify:
                for i, (hits, query) in enumerate(zip(found, queries)):
                    if is_vague(query):  # whether to offer sections is read on the verifier's scores
                        continue
                    decided = self.fast_decider.run(query, hits[: self.top_k])
                    if decided[0] >= self.skip_verifier_at:
                        fast[i] = decided
            slow = [i for i, f in enumerate(fast) if f is None]
            ranked: list[list[Hit]] = [hits[: self.top_k] for hits in found]
            vqs: list[np.ndarray | None] = [None] * len(asked)
            if self.verifier is not None:
                self.verifier_use["skipped"] += len(asked) - len(slow)
                self.verifier_use["verified"] += len(slow)
            if self.verifier is not None and slow:
                # The verifier's vectors of the questions: they re-rank the hits and score the sentences.
                slow_vqs = self.verifier.embed_many([encoder_text(queries[i]) for i in slow])
                reranked = self.reranker.run_many([queries[i] for i in slow], [found[i] for i in slow], slow_vqs)
                for i, vq, hits in zip(slow, slow_vqs, reranked):
                    vqs[i], ranked[i] = vq, hits
            elif self.verifier is None:
                ranked = found
            for (slot, q, query, parts), start, hits, vq, decided in zip(asked, starts, ranked, vqs, fast):
                out[slot] = self._answer(
                    q, query, parts, vecs[start : start + 1 + len(parts)], hits, exclude, vq, decided
                )  # fmt: skip
        elapsed = (time.perf_counter() - t0) * 1000 / max(1, len(questions))
        return [a if isinstance(a, QuestionError) else replace(a, latency_ms=elapsed) for a in out]

    def _answer(
        self, q: str, query: str, parts: list[str], vecs: np.ndarray, ranked: list[Hit], exclude,
        vq: np.ndarray | None, decided: tuple[float, dict[str, float]] | None = None,
    ) -> Answer:
        """Decide and compose for one question whose hits are ranked (``vecs``: the query's, then each
        part's; ``vq``: the verifier's vector of the query, None without a verifier or when it was
        skipped; ``decided``: (p_answer, evidence) already made without the verifier)."""
        p_answer, evidence = decided if decided is not None else self.decider.run(query, ranked)
        hits = ranked[: self.top_k]
        candidates = self._quotable(hits, parts, vecs[1:], exclude)
        scores = {h.passage.id: self.retriever.sentence_scores(vecs[0], h.passage.id) for h in candidates}
        kind = stated_kind(query) if not parts else None
        if p_answer < 0.5 and kind is not None and vq is not None and self.stated is not None:
            # A sentence stating the asked amount, duration or time under a question (an FAQ row's answer, a
            # "## Question?" section's sentence without its title): decided on its cosine as plain text is.
            cos = self.stated.best(vq, kind[1], candidates, scores, query)
            if cos is not None:
                evidence = {**evidence, "stated": round(cos, 4)}  # reported whether or not it answers
                p_stated = self.decider.model.probability({**evidence, "dense": cos, "faq": 0.0})
                p_answer = p_stated if p_stated >= 0.5 else p_answer
        part_scores = [
            {h.passage.id: self.retriever.sentence_scores(pvec, h.passage.id) for h in candidates} for pvec in vecs[1:]
        ]
        verified = {h.passage.id: self.verified_sentences(vq, h.passage.id) for h in candidates} if vq is not None else None
        result = compose(
            q, hits, candidates, scores, self.contact, self.answer_config, p_answer, part_scores, evidence,
            parts=parts, verified=verified, query=query,
        )  # fmt: skip
        quoted = {h.passage.id: h for h in candidates}  # every quoted sentence comes from a candidate
        titled = yes_no_title(query, result, {pid: h.passage for pid, h in quoted.items()}, parts=len(parts))
        if titled is not None and not evidence.get("faq"):
            # "Do you rent out bikes?" must not be answered "Yes, our workshop repairs bikes ...": a bare
            # yes answers its section's question, so the section is decided as an FAQ row would be.
            model = (self.decider if decided is None else self.fast_decider).model  # the one that read ``evidence``
            if model.probability({**evidence, "faq": 1.0}) < 0.5:
                result = refuse(
                    q, self.contact, confidence=NOT_STATED_CONFIDENCE, reason="not_stated", hits=hits,
                    evidence=result.evidence, related=[Citation.from_hit(quoted[titled.id])],
                )  # fmt: skip
        asked = q if contact_request(q) is not None else query  # "whats ur emial adress" read as corrected
        if (not result.answered and result.refusal_reason == "not_covered") or (
            result.answered and lacks_channel(asked, result.answer, self.contact, parts=len(parts))
        ):
            # "what's your phone number": answered from the passage that states the contact details
            # (refused, or answered from a passage that does not give the channel asked for)
            found = answer_contact(asked, self.contact, self._contact_passages(exclude), hits, result.evidence)
            result = result if found is None else replace(found, question=q)
        if result.answered and unstated_channel(asked, result.answer, self.contact, parts=len(parts)):
            result = refuse(q, self.contact, confidence=NOT_STATED_CONFIDENCE, reason="not_stated", hits=hits,
                            evidence=result.evidence, related=result.citations[:1])  # fmt: skip
        return result

    def _contact_passages(self, exclude: np.ndarray | None) -> dict[str, Passage]:
        """The passages that state the store's contact details, less those left out (``exclude``: indices)."""
        gone = set() if exclude is None else {int(i) for i in exclude}
        found = sorted(self.index.by_id[pid] for pid in self.contact.passage_ids if pid in self.index.by_id)  # corpus order
        return {self.index.passages[i].id: self.index.passages[i] for i in found if i not in gone}

    def _quotable(self, hits: list[Hit], parts: list[str], part_vecs: np.ndarray, exclude) -> list[Hit]:
        """The passages an answer may quote: the best few, plus each part's best passage, plus the paragraph
        of the best one's section that states another case a part asks about (:func:`with_section_cases`)."""
        cfg = self.answer_config
        top = hits[0].score if hits else 0.0
        candidates = [h for h in hits[: cfg.max_passages] if h.score >= top - cfg.passage_margin]
        for part, pvec in zip(parts, part_vecs):
            found = self.retriever.search(part, 1, qvec=pvec, exclude=exclude)
            if not found:
                continue
            best = found[0]
            if best.dense >= cfg.part_min_dense and best.passage.id not in {c.passage.id for c in candidates}:
                candidates.append(best)
        gone = () if exclude is None else {int(i) for i in exclude}  # passages left out
        return with_section_cases(self.index.passages, self.index.by_id, candidates, hits, parts, gone)

    def draft(
        self, message: str, *, customer_name: str | None = None, agent_name: str | None = None, history: Sequence[str] = ()
    ) -> Draft:
        """A reply draft for a support agent answering ``message`` (after ``history``, the customer's earlier messages)."""
        return compose_draft(self.ask(message, history=history), customer_name=customer_name, agent_name=agent_name)
