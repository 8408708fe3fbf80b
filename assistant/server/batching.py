"""Answer concurrent requests in batches: questions that arrive while the model is busy are
encoded together in the next call, instead of queueing one by one behind it."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Generic, TypeVar

T = TypeVar("T")


class QuestionBatcher(Generic[T]):
    """Combine the questions of concurrent callers into one ``answer_many`` call.

    Every caller queues its question, then takes the model lock. Whoever holds it answers all
    the questions queued so far (up to ``max_batch``) in one call, so a caller whose question
    was answered by another's batch returns as soon as it gets the lock. A lone request pays
    nothing: it is a batch of one. ``answer_many`` returns one result per question, in order;
    a result that is an exception is raised to that question's caller only.
    """

    def __init__(
        self,
        answer_many: Callable[[list[str]], Sequence[T | BaseException]],
        *,
        lock: threading.Lock | None = None,
        max_batch: int = 16,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self.answer_many = answer_many
        self.lock = lock or threading.Lock()  # also held by whoever must stop answers (an index refresh)
        self.max_batch = max_batch
        self._pending: list[tuple[str, Future]] = []
        self._pending_lock = threading.Lock()
        self.batches = 0  # calls of answer_many, and the questions they answered
        self.questions = 0

    def ask(self, question: str) -> T:
        done: Future = Future()
        with self._pending_lock:
            self._pending.append((question, done))
        while not done.done():
            with self.lock:
                if done.done():
                    break
                with self._pending_lock:
                    batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
                self._answer(batch)
        return done.result()

    def _answer(self, batch: list[tuple[str, Future]]) -> None:
        if not batch:
            return
        try:
            results = list(self.answer_many([q for q, _ in batch]))
            if len(results) != len(batch):
                raise RuntimeError(f"answer_many returned {len(results)} results for {len(batch)} questions")
        except BaseException as exc:  # every waiting caller learns of the failure, not just this one
            for _, fut in batch:
                fut.set_exception(exc)
            return
        self.batches += 1
        self.questions += len(batch)
        for (_, fut), result in zip(batch, results):
            if isinstance(result, BaseException):
                fut.set_exception(result)
            else:
                fut.set_result(result)
