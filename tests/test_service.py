"""Unit tests for assistant/server/service.py: AssistantService (fake-encoder assistant, SQLite log
in tmp_path) and CorpusWatch. No server is started; the HTTP edges are tested in test_api.py."""

from __future__ import annotations

import os
from dataclasses import replace

import pytest

from assistant.core.corpus import fingerprint_files
from assistant.core.pipeline import Assistant
from assistant.errors import CorpusError, UnavailableError
from assistant.index.freshness import RACY_NS, CorpusWatch
from assistant.server.feedback import FeedbackStore, Interaction
from assistant.server.service import AssistantService

from .conftest import TINY_FAQ


@pytest.fixture
def assistant(fake_assistant) -> Assistant:
    return fake_assistant


@pytest.fixture
def store(tmp_path):
    with FeedbackStore.open(tmp_path / "data") as s:
        yield s


@pytest.fixture
def watched(assistant, store, tiny_corpus, tmp_path) -> AssistantService:
    return AssistantService(assistant, store, corpus=[tiny_corpus], index_dir=tmp_path / "idx", refresh_wait_s=60)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"corpus": ["x"]}, r"corpus and index_dir go together: pass both to watch the corpus, or neither"),
        ({"index_dir": "x"}, r"corpus and index_dir go together"),
        ({"refresh_wait_s": -1}, r"refresh_wait_s must be >= 0, got -1"),
        ({"retry_after_s": 0}, r"retry_after_s must be >= 1, got 0"),
    ],
)
def test_constructor_rejects_bad_settings(assistant, store, kwargs, message):
    with pytest.raises(ValueError, match=message):
        AssistantService(assistant, store, **kwargs)


def test_ask_is_logged(assistant, store):
    service = AssistantService(assistant, store)
    answer, interaction_id = service.ask("Do you accept PayPal?", channel="api")
    assert answer.answered and answer.citations[0].id == "tiny:payment-1"
    logged = store.get(interaction_id)
    assert logged == Interaction(
        id=interaction_id, created_at=logged.created_at, kind="ask", channel="api", question="Do you accept PayPal?",
        answer=answer.answer, answered=True, confidence=pytest.approx(answer.confidence), cited_ids=["tiny:payment-1"],
        refusal_reason=None, latency_ms=pytest.approx(answer.latency_ms), helpful=None,
    )  # fmt: skip


def test_draft_is_logged_as_a_draft(assistant, store):
    service = AssistantService(assistant, store)
    draft, interaction_id = service.draft("what is the weather in London", customer_name="Ann", agent_name="Bob", channel="web")
    assert draft.escalate and draft.text.startswith("Hi Ann,")
    logged = store.get(interaction_id)
    assert (logged.kind, logged.channel, logged.answered, logged.refusal_reason) == ("draft", "web", False, "not_covered")


def test_payloads_carry_the_interaction_id(assistant, store):
    service = AssistantService(assistant, store)
    ask = service.ask_payload("Do you accept PayPal?", channel="api")
    draft = service.draft_payload("Do you accept PayPal?", customer_name="Ann", channel="api")
    expected = assistant.ask("Do you accept PayPal?").to_dict()
    assert {k: v for k, v in ask.items() if k not in ("interaction_id", "rating_token", "latency_ms")} == {
        k: v for k, v in expected.items() if k != "latency_ms"
    }
    assert (ask["interaction_id"], draft["interaction_id"]) == (1, 2)
    assert len(ask["rating_token"]) >= 20 and ask["rating_token"] != draft["rating_token"]
    assert draft["draft"].startswith("Hi Ann,") and draft["escalate"] is False and "next_steps" in draft
    assert store.totals().interactions == 2


def test_health_of_an_unwatched_service(assistant, store):
    service = AssistantService(assistant, store)
    service.ask("Do you accept PayPal?", channel="api")
    health = service.health()
    manifest = assistant.index.manifest
    assert health == {
        "status": "ok",
        "index": {
            "passages": 5, "files": 1, "model": "fake-bow", "dimension": 64, "verifier": "none",
            "built_at": manifest["built_at"], "corpus_fingerprint": manifest["corpus_fingerprint"],
            "watching": False, "refresh": "idle", "refresh_error": None, "refreshes": 0,
            "verifier_missing": None, "refusal": "default", "self_calibration": None, "learned": 0,
        },
        "feedback": {
            "backend": "sqlite", "database": str(store.url), "schema_version": store.schema_version, "status": "ok",
            "interactions": 1, "ratings": 0,
        },
    }  # fmt: skip


def test_an_unchanged_corpus_is_not_refreshed(watched):
    before = watched.assistant
    watched.ask("Do you accept PayPal?", channel="api")
    watched.ask("Can I return items?", channel="api")
    assert watched.assistant is before and watched.refreshes == 0
    assert watched.health()["index"]["watching"] is True


def test_a_corpus_edit_refreshes_before_the_next_answer(watched, tiny_corpus):
    lines: list[str] = []
    watched._log = lines.append
    before = watched.assistant
    (tiny_corpus / "tiny.txt").write_text(TINY_FAQ + "\nGift cards\n\nGift cards never expire.\n", encoding="utf-8")
    answer, _ = watched.ask("Do gift cards expire?", channel="api")
    assert watched.refreshes == 1 and watched.assistant is not before
    assert answer.citations and answer.citations[0].id == "tiny:gift-cards-1"
    assert len(watched.assistant.index.passages) == 6 and len(before.index.passages) == 5
    assert lines[0] == "index: the corpus changed; refreshing the index"
    assert lines[1].startswith("index: refreshed in ") and "(6 passages, 2 vectors embedded)" in lines[1]
    health = watched.health()
    assert (health["status"], health["index"]["refresh"], health["index"]["refreshes"]) == ("ok", "idle", 1)
    watched.ask("Do gift cards expire?", channel="api")
    assert watched.refreshes == 1  # once is enough


def test_a_broken_edit_stops_answers_until_it_is_fixed(watched, tiny_corpus):
    path = tiny_corpus / "tiny.txt"
    path.write_bytes(b"\xff\xfe\x00 not text \x00")
    with pytest.raises(UnavailableError, match=r"the store's policies were edited and cannot be loaded \(.*tiny\.txt") as info:
        watched.ask("Do you accept PayPal?", channel="api")
    assert (info.value.reason, info.value.retry_after_s) == ("corpus_error", 5)
    health = watched.health()
    assert health["status"] == "corpus_error" and "tiny.txt" in health["index"]["refresh_error"]
    with pytest.raises(UnavailableError, match=r"cannot be loaded"):  # the same broken file is not retried
        watched.draft("Do you accept PayPal?", channel="api")
    path.write_text(TINY_FAQ, encoding="utf-8")  # the edit reverted
    answer, _ = watched.ask("Do you accept PayPal?", channel="api")
    assert answer.answered and watched.health()["status"] == "ok"


def test_a_vanished_corpus_is_unavailable(watched, tiny_corpus, store):
    (tiny_corpus / "tiny.txt").unlink()
    with pytest.raises(UnavailableError, match=r"the store's policies cannot be read right now") as info:
        watched.ask("Do you accept PayPal?", channel="api")
    assert info.value.reason == "corpus_error"
    assert store.totals().interactions == 0  # nothing answered, nothing logged


def test_a_slow_refresh_is_unavailable_with_retry_after(assistant, store, tiny_corpus, tmp_path):
    service = AssistantService(assistant, store, corpus=[tiny_corpus], index_dir=tmp_path / "idx", refresh_wait_s=0,
                               retry_after_s=7)  # fmt: skip
    with service._lock:  # the refresh thread waits for this lock, as for a question being answered
        (tiny_corpus / "tiny.txt").write_text(TINY_FAQ + "\nNew\n\nNew policy here.\n", encoding="utf-8")
        with pytest.raises(UnavailableError, match=r"being re-indexed; please try again shortly") as info:
            service.ensure_fresh()
        assert (info.value.reason, info.value.retry_after_s) == ("refreshing", 7)
        assert service.health()["status"] == "refreshing"
    service.refresh_wait_s = 60
    service.ensure_fresh()
    assert service.refreshes == 1


# --- CorpusWatch -----------------------------------------------------------------------------


def age(path, seconds: float = 60) -> None:
    """Set a file's mtime in the past, out of the racy window."""
    old = os.stat(path).st_mtime_ns - int(seconds * 1e9) - RACY_NS
    os.utime(path, ns=(old, old))


def test_watch_hashes_only_when_a_file_changed(tiny_corpus):
    path = tiny_corpus / "tiny.txt"
    age(path)
    watch = CorpusWatch([tiny_corpus])
    first = watch.fingerprint()
    assert first == fingerprint_files([path]) and watch.hashes == 1
    assert watch.fingerprint() == first and watch.hashes == 1  # only a stat
    path.write_text(TINY_FAQ.replace("30 days", "14 days"), encoding="utf-8")
    age(path, 30)
    second = watch.fingerprint()
    assert second != first and second == fingerprint_files([path]) and watch.hashes == 2


def test_watch_hashes_a_racy_file_every_time(tiny_corpus):
    watch = CorpusWatch([tiny_corpus])  # the file was just written: same-tick edits are possible
    watch.fingerprint()
    watch.fingerprint()
    assert watch.hashes == 2


def test_watch_sees_an_added_file(tiny_corpus):
    age(tiny_corpus / "tiny.txt")
    watch = CorpusWatch([tiny_corpus])
    first = watch.fingerprint()
    (tiny_corpus / "more.txt").write_text("More\n\nMore text here.\n", encoding="utf-8")
    assert watch.fingerprint() != first


def test_watch_of_a_missing_corpus_raises(tmp_path):
    with pytest.raises(CorpusError, match=r"missing"):
        CorpusWatch([tmp_path / "missing"]).fingerprint()


def test_payload_interaction_ids_can_be_rated(assistant, store):
    service = AssistantService(assistant, store)
    payload = service.ask_payload("Do you accept PayPal?", channel="web")
    store.rate(payload["interaction_id"], True)
    assert replace(store.get(payload["interaction_id"]), created_at="").helpful is True
