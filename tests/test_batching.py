"""QuestionBatcher: concurrent questions answered together, each caller gets its own result."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from assistant.errors import QuestionError
from assistant.server.batching import QuestionBatcher


class SlowModel:
    """Answers upper-cased questions; each call takes a while, as an encoder does."""

    def __init__(self, delay_s: float = 0.05) -> None:
        self.delay_s = delay_s
        self.calls: list[list[str]] = []
        self.lock = threading.Lock()

    def answer_many(self, questions: list[str]):
        with self.lock:
            self.calls.append(list(questions))
        time.sleep(self.delay_s)
        return [QuestionError("the question is empty") if not q else q.upper() for q in questions]


def test_a_lone_question_is_a_batch_of_one():
    model = SlowModel(0)
    batcher = QuestionBatcher(model.answer_many)
    assert batcher.ask("hello") == "HELLO"
    assert model.calls == [["hello"]] and (batcher.batches, batcher.questions) == (1, 1)


def test_concurrent_questions_share_calls_and_get_their_own_answers():
    model = SlowModel(0.05)
    batcher = QuestionBatcher(model.answer_many, max_batch=8)
    questions = [f"q{i}" for i in range(24)]
    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(batcher.ask, questions))
    assert answers == [q.upper() for q in questions]
    assert sorted(q for call in model.calls for q in call) == sorted(questions)  # each asked exactly once
    assert len(model.calls) < len(questions) and max(len(c) for c in model.calls) > 1
    assert max(len(c) for c in model.calls) <= 8


def test_an_error_reaches_only_its_caller():
    model = SlowModel(0.02)
    batcher = QuestionBatcher(model.answer_many)
    with ThreadPoolExecutor(4) as pool:
        futures = {q: pool.submit(batcher.ask, q) for q in ["a", "", "b", "c"]}
        with pytest.raises(QuestionError, match="empty"):
            futures[""].result()
        assert [futures[q].result() for q in "abc"] == ["A", "B", "C"]


def test_a_failing_model_fails_the_whole_batch_loudly():
    def broken(questions):
        raise RuntimeError("model crashed")

    batcher = QuestionBatcher(broken)
    with pytest.raises(RuntimeError, match="model crashed"):
        batcher.ask("x")
    wrong = QuestionBatcher(lambda qs: ["only one"] * (len(qs) + 1))
    with pytest.raises(RuntimeError, match="returned 2 results for 1 questions"):
        wrong.ask("x")


def test_holding_the_lock_pauses_answers():
    """An index refresh holds the lock: no question is answered until it is released."""
    model = SlowModel(0)
    lock = threading.Lock()
    batcher = QuestionBatcher(model.answer_many, lock=lock)
    with lock:
        with ThreadPoolExecutor(1) as pool:
            fut = pool.submit(batcher.ask, "wait")
            time.sleep(0.1)
            assert not fut.done() and model.calls == []
            lock.release()
            try:
                assert fut.result(timeout=5) == "WAIT"
            finally:
                lock.acquire()


@pytest.mark.parametrize("max_batch", [0, -1])
def test_max_batch_is_validated(max_batch):
    with pytest.raises(ValueError, match="max_batch must be >= 1"):
        QuestionBatcher(lambda qs: qs, max_batch=max_batch)
