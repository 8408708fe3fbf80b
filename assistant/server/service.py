"""What the web UI and the JSON API share: the assistant behind one lock, every answer logged,
and the index kept in step with the corpus files while the server runs.

The answer object both edges return is ``Answer.to_dict()`` (``Draft.to_dict()`` for drafts)
plus the ``interaction_id`` under which it was logged and a ``rating_token``: whoever holds
both can rate the answer, nobody else can.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from assistant.core.draft import compose_draft
from assistant.core.pipeline import Assistant
from assistant.dialogue.clarify import offer
from assistant.errors import AssistantError, CorpusError, LinkError, UnavailableError
from assistant.index.freshness import CorpusWatch, FileWatch
from assistant.learning.clustering import MAX_QUESTIONS, QuestionGroup, group_questions
from assistant.learning.links import Link, append_link, find_passage, new_link
from assistant.schema import Answer, Draft
from assistant.server.batching import QuestionBatcher
from assistant.server.feedback import FeedbackStore, new_rating_token

log = logging.getLogger("assistant.server.service")

class AssistantService:
    """Answers and drafts through one assistant, logging each to the feedback store.

    With ``corpus`` and ``index_dir`` the service watches the corpus files: before each answer it
    checks (by file stat, hashing only files that changed) whether they still match the index.
    When they do not, the index is refreshed on a background thread (only edited passages are
    embedded again) and the request waits up to ``refresh_wait_s`` for it; a refresh that takes
    longer, or an edited corpus that cannot be loaded, raises :class:`UnavailableError`, so an
    answer from the old policies is never given once the files changed.
    """

    def __init__(
        self,
        assistant: Assistant,
        store: FeedbackStore,
        *,
        corpus: list[str | Path] | None = None,
        index_dir: str | Path | None = None,
        refresh_wait_s: float = 10.0,
        retry_after_s: int = 5,
        log: Callable[[str], None] | None = None,
    ) -> None:
        if (corpus is None) != (index_dir is None):
            raise ValueError("corpus and index_dir go together: pass both to watch the corpus, or neither")
        if refresh_wait_s < 0:
            raise ValueError(f"refresh_wait_s must be >= 0, got {refresh_wait_s}")
        if retry_after_s < 1:
            raise ValueError(f"retry_after_s must be >= 1, got {retry_after_s}")
        self.assistant = assistant
        self.store = store
        # One model call at a time: the encoder already uses every core for one question, and
        # the retriever's internals are not promised to be thread-safe.
        self._lock = threading.Lock()
        # Questions that arrive while the model is busy are answered together in its next call.
        self.batcher: QuestionBatcher[Answer] = QuestionBatcher(
            lambda questions: self.assistant.ask_many(questions), lock=self._lock
        )
        self.index_dir = Path(index_dir) if index_dir is not None else None
        self.watch = CorpusWatch(corpus) if corpus is not None else None
        # The confirmed links are watched like the corpus: a new link refreshes the index.
        path = assistant.learned_path
        self.links_watch = FileWatch(path) if path is not None and self.watch is not None else None
        self._links_lock = threading.Lock()  # one writer of the links file at a time
        self._group_vectors: dict[str, np.ndarray] = {}  # refused question -> its vector, for the grouping
        self.refresh_wait_s = refresh_wait_s
        self.retry_after_s = retry_after_s
        self._log = log
        self._state_lock = threading.Lock()  # guards the four fields below
        self._live_fingerprint = self._fingerprint_of(assistant.index.manifest.get("corpus_fingerprint", ""))
        self._refreshing: threading.Event | None = None
        self._failed: tuple[str, str] | None = None  # (fingerprint, error) of a corpus that did not load
        self.refreshes = 0

    # --- freshness ---

    def ensure_fresh(self) -> None:
        """Return once the live index matches the corpus files; refresh it first if they changed.

        Raises:
            UnavailableError: the refresh is still running after ``refresh_wait_s``, or the
                corpus cannot be loaded as it is now.
        """
        if self.watch is None:
            return
        deadline = time.monotonic() + self.refresh_wait_s
        while True:
            with self._state_lock:
                try:
                    fingerprint = self._fingerprint_of(self.watch.fingerprint())
                except CorpusError as exc:
                    raise UnavailableError(
                        f"the store's policies cannot be read right now ({exc}); please try again later",
                        reason="corpus_error", retry_after_s=self.retry_after_s,
                    ) from None
                if fingerprint == self._live_fingerprint:
                    self._failed = None  # e.g. a broken edit was reverted
                    return
                if self._failed is not None and self._failed[0] == fingerprint:
                    raise UnavailableError(
                        f"the store's policies were edited and cannot be loaded ({self._failed[1]}); "
                        "answers resume once the file is fixed",
                        reason="corpus_error", retry_after_s=self.retry_after_s,
                    )
                if self._refreshing is None:
                    self._refreshing = threading.Event()
                    threading.Thread(
                        target=self._refresh, args=(fingerprint, self._refreshing), name="index-refresh", daemon=True
                    ).start()
                done = self._refreshing
            if not done.wait(max(0.0, deadline - time.monotonic())):
                raise UnavailableError(
                    "the store's policies were just updated and are being re-indexed; please try again shortly",
                    reason="refreshing", retry_after_s=self.retry_after_s,
                )

    def _fingerprint_of(self, corpus_fingerprint: str) -> str:
        """What the live index must match: the corpus, and the links file when there is one."""
        if self.links_watch is None:
            return corpus_fingerprint
        return f"{corpus_fingerprint}|links:{self.links_watch.fingerprint()}"

    def _refresh(self, fingerprint: str, done: threading.Event) -> None:
        t0 = time.perf_counter()
        self._say("index: the corpus changed; refreshing the index")
        try:
            with self._lock:  # no question is answered from an index that is being replaced
                # Vectors of unchanged passages are reused from the old index.
                self.assistant, stats = self.assistant.refreshed(self.watch.corpus, self.index_dir)
            with self._state_lock:
                self._live_fingerprint, self._failed = fingerprint, None
                self.refreshes += 1
            self._say(
                f"index: refreshed in {time.perf_counter() - t0:.1f}s "
                f"({stats.passages} passages, {stats.embedded} vectors embedded)"
            )
        except AssistantError as exc:
            with self._state_lock:
                self._failed = (fingerprint, str(exc))
            self._say(f"index: the edited corpus cannot be loaded, not answering until it is fixed: {exc}")
        except Exception as exc:  # keep serving errors, not a dead refresh thread
            log.exception("index refresh failed")
            with self._state_lock:
                self._failed = (fingerprint, f"the index could not be rebuilt ({type(exc).__name__})")
        finally:
            with self._state_lock:
                self._refreshing = None
            done.set()

    def _say(self, message: str) -> None:
        if self._log is not None:
            self._log(message)

    # --- answers ---

    def ask(self, question: str, *, channel: str, history: Sequence[str] = ()) -> tuple[Answer, int]:
        answer, interaction_id, _ = self._ask(question, channel=channel, history=history)
        return answer, interaction_id

    def _answer(self, question: str, history: Sequence[str]) -> Answer:
        """The answer in its conversation: alone, a question joins the others' batch."""
        if history:
            with self._lock:  # its readings are answered in one batch of their own
                return self.assistant.ask(question, history=history)
        return offer(question, self.batcher.ask(question))

    def _ask(self, question: str, *, channel: str, history: Sequence[str] = ()) -> tuple[Answer, int, str]:
        self.ensure_fresh()
        answer = self._answer(question, history)
        # Logged before it is returned: an answer the log could not take is an error (503), never
        # an unlogged 200.
        token = new_rating_token()
        return answer, self.store.record("ask", answer, channel=channel, rating_token=token), token

    def draft(
        self, message: str, *, customer_name: str | None = None, agent_name: str | None = None, channel: str,
        history: Sequence[str] = (),
    ) -> tuple[Draft, int]:
        draft, interaction_id, _ = self._draft(
            message, customer_name=customer_name, agent_name=agent_name, channel=channel, history=history
        )
        return draft, interaction_id

    def _draft(
        self, message: str, *, customer_name: str | None, agent_name: str | None, channel: str, history: Sequence[str] = ()
    ) -> tuple[Draft, int, str]:
        self.ensure_fresh()
        draft = compose_draft(self._answer(message, history), customer_name=customer_name, agent_name=agent_name)
        token = new_rating_token()
        return draft, self.store.record("draft", draft.answer, channel=channel, rating_token=token), token

    def ask_payload(self, question: str, *, channel: str, history: Sequence[str] = ()) -> dict:
        answer, interaction_id, token = self._ask(question, channel=channel, history=history)
        return {**answer.to_dict(), "interaction_id": interaction_id, "rating_token": token}

    def draft_payload(
        self, message: str, *, customer_name: str | None = None, agent_name: str | None = None, channel: str,
        history: Sequence[str] = (),
    ) -> dict:
        draft, interaction_id, token = self._draft(
            message, customer_name=customer_name, agent_name=agent_name, channel=channel, history=history
        )
        return {**draft.to_dict(), "interaction_id": interaction_id, "rating_token": token}

    # --- learning ---

    def add_link(self, question: str, passage_id: str, *, by: str = "") -> Link:
        """Link a customer question to the passage that answers it, and refresh the index with it.

        Raises:
            LinkError: no links file (the server was started without a corpus to watch), an
                empty question, or a passage id that is not in the corpus.
            UnavailableError: the refresh did not finish within ``refresh_wait_s`` (the link is saved).
        """
        path = self.assistant.learned_path
        if path is None or self.links_watch is None:
            raise LinkError("this server has no links file (start it with a corpus to watch, and --learned FILE)")
        link = new_link(question, find_passage(self.assistant.index.passages, passage_id), by=by)
        with self._links_lock:
            saved = append_link(path, link)
        self.ensure_fresh()  # the next answer (and this response) come from the index with the link
        return saved

    def refused_groups(self, limit: int = 10, *, threshold: float | None = None) -> list[QuestionGroup]:
        """The refused questions grouped by meaning (most asked groups first)."""
        refused = self.store.top_refused(MAX_QUESTIONS)
        if not refused:
            return []
        pairs = [(r.question, r.count) for r in refused]
        # Each question is embedded once (insights are read again and again; answers share the model).
        new = [q for q, _ in pairs if q not in self._group_vectors]
        if new:
            with self._lock:  # the encoder is the one answering questions
                encoded = self.assistant.encoder.encode(new)
            if len(self._group_vectors) + len(new) > 4 * MAX_QUESTIONS:
                self._group_vectors.clear()
            self._group_vectors.update(zip(new, encoded))
        vectors = np.stack([self._group_vectors[q] for q, _ in pairs])
        kwargs = {} if threshold is None else {"threshold": threshold}
        return group_questions(pairs, vectors, **kwargs)[:limit]

    def candidates(self, question: str, k: int = 5) -> list[dict]:
        """The passages a staff member may link ``question`` to: the retriever's best ``k``."""
        with self._lock:
            assistant = self.assistant
            hits = assistant.verify(question, assistant.retriever.search(question, assistant.candidates))[:k]
        return [{"id": h.passage.id, "title": h.passage.title, "text": h.passage.text} for h in hits]

    def health(self) -> dict:
        index = self.assistant.index
        manifest = index.manifest
        feedback = self.store.health()
        with self._state_lock:
            refresh = "running" if self._refreshing is not None else ("failed" if self._failed else "idle")
            refresh_error = self._failed[1] if self._failed else None
        status = {"idle": "ok", "running": "refreshing", "failed": "corpus_error"}[refresh]
        if feedback["status"] != "ok":
            status = "feedback_error"  # answers cannot be logged: /healthz answers 503
        fitted = getattr(self.assistant, "self_calibration", None)  # what the corpus's own leave-outs say
        return {
            "status": status,
            "index": {
                "passages": len(index.passages),
                "files": len({p.source for p in index.passages}),
                "model": manifest.get("model"),
                "dimension": manifest.get("dimension"),
                "verifier": self.assistant.verifier_name,
                "verifier_missing": self.assistant.verifier_missing,  # why the default verifier is off, or null
                "refusal": self.assistant.refusal.source,
                "self_calibration": fitted.to_dict() if fitted is not None else None,
                "built_at": manifest.get("built_at"),
                "corpus_fingerprint": manifest.get("corpus_fingerprint"),
                "watching": self.watch is not None,
                "refresh": refresh,
                "refresh_error": refresh_error,
                "refreshes": self.refreshes,
                "learned": len(self.assistant.index.learned),
            },
            "feedback": feedback,
        }
