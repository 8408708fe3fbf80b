"""What the web UI and the JSON API share: the assistant behind one lock, every answer logged.

The answer object both edges return is ``Answer.to_dict()`` (``Draft.to_dict()`` for drafts)
plus the ``interaction_id`` under which it was logged, so a client can rate it.
"""

from __future__ import annotations

import threading

from .feedback import FeedbackStore
from .pipeline import Assistant
from .schema import Answer, Draft


class AssistantService:
    """Answers and drafts through one assistant, logging each to the feedback store."""

    def __init__(self, assistant: Assistant, store: FeedbackStore) -> None:
        self.assistant = assistant
        self.store = store
        # One model call at a time: the encoder already uses every core for one question, and
        # the retriever's internals are not promised to be thread-safe.
        self._lock = threading.Lock()

    def ask(self, question: str, *, channel: str) -> tuple[Answer, int]:
        with self._lock:
            answer = self.assistant.ask(question)
        return answer, self.store.record("ask", answer, channel=channel)

    def draft(
        self, message: str, *, customer_name: str | None = None, agent_name: str | None = None, channel: str
    ) -> tuple[Draft, int]:
        with self._lock:
            draft = self.assistant.draft(message, customer_name=customer_name, agent_name=agent_name)
        return draft, self.store.record("draft", draft.answer, channel=channel)

    def ask_payload(self, question: str, *, channel: str) -> dict:
        answer, interaction_id = self.ask(question, channel=channel)
        return {**answer.to_dict(), "interaction_id": interaction_id}

    def draft_payload(
        self, message: str, *, customer_name: str | None = None, agent_name: str | None = None, channel: str
    ) -> dict:
        draft, interaction_id = self.draft(message, customer_name=customer_name, agent_name=agent_name, channel=channel)
        return {**draft.to_dict(), "interaction_id": interaction_id}

    def health(self) -> dict:
        index = self.assistant.index
        manifest = index.manifest
        totals = self.store.totals()
        return {
            "status": "ok",
            "index": {
                "passages": len(index.passages),
                "files": len({p.source for p in index.passages}),
                "model": manifest.get("model"),
                "dimension": manifest.get("dimension"),
                "built_at": manifest.get("built_at"),
                "corpus_fingerprint": manifest.get("corpus_fingerprint"),
            },
            "feedback": {"interactions": totals.interactions, "ratings": totals.ratings},
        }
