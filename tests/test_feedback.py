"""The SQLite feedback log: masking, records and ratings, insights, CSV export, WAL and threads."""

import csv
import io
import sqlite3
import threading

import pytest

from assistant.errors import FeedbackError
from assistant.server.feedback import (
    CSV_COLUMNS,
    DailyRate,
    FeedbackStore,
    RatedAnswer,
    RefusedQuestion,
    mask_pii,
)
from assistant.schema import Answer, Citation, SupportContact

CONTACT = SupportContact(text="help@shop.example", kind="email", passage_id="faq:contact-1")


def answered(question: str, answer: str = "Orders ship in 2 days. [1]", ids=("faq:shipping-1",)) -> Answer:
    citations = [Citation(id=i, doc_id="faq", title="Shipping", text="Orders ship in 2 days.", score=0.8) for i in ids]
    return Answer(question=question, answered=True, answer=answer, confidence=0.9, citations=citations,
                  support_contact=CONTACT, latency_ms=12.5)


def refused(question: str) -> Answer:
    return Answer(question=question, answered=False, answer="I couldn't find this.", confidence=0.2,
                  support_contact=CONTACT, refusal_reason="not_covered", latency_ms=8.0)


@pytest.fixture
def store(tmp_path):
    with FeedbackStore.open(tmp_path / "data") as s:
        yield s


# --- masking -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("my email is jane.doe+shop@mail.example.co.uk, ok?", "my email is [email], ok?"),
        ("JOHN_99@EXAMPLE.COM", "[email]"),
        ("card 4111 1111 1111 1111 was charged twice", "card [card] was charged twice"),
        ("card 4111-1111-1111-1111", "card [card]"),
        ("4111111111111111", "[card]"),
        ("amex 3782 822463 10005 declined", "amex [card] declined"),
        ("call me on +44 20 7946 0958 please", "call me on [phone] please"),
        ("call (555) 123-4567", "call [phone]"),
        ("555.123.4567 or 0033612345678", "[phone] or [phone]"),
        ("+4412345678901", "[phone]"),
        ("text +1-202-555-0143!", "text [phone]!"),
        ("order 1234567 never came", "order [phone] never came"),  # long numbers: masked, privacy first
        # kept: nothing personal in these
        ("ordered on 2024-05-01, arrived 01/05/2024", "ordered on 2024-05-01, arrived 01/05/2024"),
        ("order #12345 costs $1,299.00", "order #12345 costs $1,299.00"),
        ("925 sterling silver, 5 to 14 working days, 30 days", "925 sterling silver, 5 to 14 working days, 30 days"),
        ("a 256-bit SSL certificate", "a 256-bit SSL certificate"),
        ("", ""),
    ],
)
def test_mask_pii(text, expected):
    assert mask_pii(text) == expected


def test_mask_pii_masks_every_kind_in_one_text():
    text = "I'm ann@x.io, +33 6 12 34 56 78, card 5500 0000 0000 0004; where is my parcel?"
    assert mask_pii(text) == "I'm [email], [phone], card [card]; where is my parcel?"


# --- records and ratings -------------------------------------------------------------------


def test_record_masks_the_question_before_it_is_written(store):
    iid = store.record("ask", answered("I'm ann@x.io, card 4111 1111 1111 1111: when do you ship?"), channel="api")
    raw = sqlite3.connect(store.path).execute("SELECT question FROM interactions WHERE id = ?", (iid,)).fetchone()[0]
    assert raw == "I'm [email], card [card]: when do you ship?"
    got = store.get(iid)
    assert got.question == raw
    assert (got.kind, got.channel, got.answered, got.cited_ids, got.helpful) == ("ask", "api", True, ["faq:shipping-1"], None)
    assert got.confidence == pytest.approx(0.9) and got.latency_ms == pytest.approx(12.5)


def test_refusal_is_recorded_with_its_reason(store):
    iid = store.record("draft", refused("Do you sell watches?"))
    got = store.get(iid)
    assert (got.kind, got.answered, got.refusal_reason, got.cited_ids) == ("draft", False, "not_covered", [])


def test_rating_is_set_changed_and_removed(store):
    iid = store.record("ask", answered("When do you ship?"))
    store.rate(iid, True)
    assert store.get(iid).helpful is True
    store.rate(iid, False)
    assert store.get(iid).helpful is False
    assert store.totals().ratings == 1  # one rating per answer: a change replaces it
    store.rate(iid, None)
    assert store.get(iid).helpful is None and store.totals().ratings == 0


@pytest.mark.parametrize("bad_id, message", [(999, "no answer with interaction id 999"), ("1", "must be an integer"), (True, "must be an integer")])
def test_rating_an_unknown_answer_is_an_error(store, bad_id, message):
    store.record("ask", answered("When do you ship?"))
    with pytest.raises(FeedbackError, match=message):
        store.rate(bad_id, True)


def test_unknown_kind_is_an_error(store):
    with pytest.raises(ValueError, match="kind must be one of"):
        store.record("chat", answered("When do you ship?"))


def test_get_unknown_id_is_an_error(store):
    with pytest.raises(FeedbackError, match="no answer with interaction id 7"):
        store.get(7)


def test_records_survive_reopening(tmp_path):
    with FeedbackStore.open(tmp_path) as s:
        iid = s.record("ask", answered("When do you ship?"))
        s.rate(iid, True)
    with FeedbackStore.open(tmp_path) as s:
        assert s.get(iid).helpful is True and s.totals().interactions == 1


def test_closed_store_refuses_use(tmp_path):
    s = FeedbackStore.open(tmp_path)
    s.close()
    with pytest.raises(FeedbackError, match="closed"):
        s.record("ask", answered("x"))


# --- the database itself ---------------------------------------------------------------------


def test_database_is_in_wal_mode(store):
    store.record("ask", answered("When do you ship?"))
    conn = sqlite3.connect(store.path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.path.with_name(store.path.name + "-wal").exists()


def test_data_dir_that_is_a_file_is_a_clear_error(tmp_path):
    (tmp_path / "data").write_text("not a folder")
    with pytest.raises(FeedbackError, match="cannot create the data folder .*data"):
        FeedbackStore.open(tmp_path / "data")


def test_corrupt_database_is_a_clear_error(tmp_path):
    (tmp_path / "feedback.sqlite3").write_bytes(b"this is not an sqlite database" * 100)
    with pytest.raises(FeedbackError, match=r"feedback\.sqlite3: cannot use the feedback database"):
        FeedbackStore.open(tmp_path)


def test_concurrent_writers_lose_nothing(tmp_path):
    """Threads sharing one store and a second store on the same file (as a second process
    would) write at once: every record and rating lands, ids are unique, the file is sound."""
    shared = FeedbackStore.open(tmp_path)
    other = FeedbackStore.open(tmp_path)
    threads, per_thread = 8, 40
    ids: list[list[int]] = [[] for _ in range(threads)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(threads)

    def work(n: int) -> None:
        s = shared if n % 2 else other
        try:
            barrier.wait()
            for k in range(per_thread):
                iid = s.record("ask" if k % 2 else "draft", answered(f"thread {n} question {k}"), channel=f"t{n}")
                s.rate(iid, bool(k % 3))
                ids[n].append(iid)
                if k % 10 == 0:
                    s.top_refused()  # readers run alongside the writers
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert not errors, errors
    all_ids = [i for chunk in ids for i in chunk]
    assert len(set(all_ids)) == threads * per_thread
    totals = shared.totals()
    assert (totals.interactions, totals.ratings) == (threads * per_thread, threads * per_thread)
    for n in range(threads):
        rows = sqlite3.connect(shared.path).execute(
            "SELECT question FROM interactions WHERE channel = ? ORDER BY id", (f"t{n}",)
        ).fetchall()
        assert [r[0] for r in rows] == [f"thread {n} question {k}" for k in range(per_thread)]
    shared.close()
    other.close()
    assert sqlite3.connect(tmp_path / "feedback.sqlite3").execute("PRAGMA integrity_check").fetchone()[0] == "ok"


# --- insights ------------------------------------------------------------------------------


def test_top_refused_groups_case_and_punctuation(store):
    for q, at in [
        ("Do you sell watches?", "2024-05-01T10:00:00.000Z"),
        ("do you sell  watches", "2024-05-02T10:00:00.000Z"),
        ("Gift cards?", "2024-05-03T10:00:00.000Z"),
        ("DO YOU SELL WATCHES!", "2024-05-01T11:00:00.000Z"),
        ("Student discount?", "2024-05-01T09:00:00.000Z"),
    ]:
        store.record("ask", refused(q), at=at)
    store.record("ask", answered("When do you ship?"))
    assert store.top_refused() == [
        RefusedQuestion(question="DO YOU SELL WATCHES!", count=3, last_asked="2024-05-02T10:00:00.000Z"),
        RefusedQuestion(question="Gift cards?", count=1, last_asked="2024-05-03T10:00:00.000Z"),
        RefusedQuestion(question="Student discount?", count=1, last_asked="2024-05-01T09:00:00.000Z"),
    ]
    assert len(store.top_refused(limit=1)) == 1


def test_lowest_rated_puts_unhelpful_answers_first(store):
    good = store.record("ask", answered("When do you ship?"))
    bad = [store.record("ask", answered("Can I resize?", answer="We do not resize. [1]")) for _ in range(3)]
    store.record("ask", answered("Unrated?"))
    store.rate(good, True)
    store.rate(bad[0], False)
    store.rate(bad[1], False)
    store.rate(bad[2], True)
    assert store.lowest_rated() == [
        RatedAnswer(question="Can I resize?", answer="We do not resize. [1]", helpful=1, not_helpful=2),
        RatedAnswer(question="When do you ship?", answer="Orders ship in 2 days. [1]", helpful=1, not_helpful=0),
    ]
    assert store.lowest_rated()[0].helpful_rate == pytest.approx(1 / 3)


def test_answer_rate_per_day(store):
    store.record("ask", answered("a"), at="2024-05-01T10:00:00.000Z")
    store.record("ask", refused("b"), at="2024-05-01T23:59:59.999Z")
    store.record("ask", answered("c"), at="2024-05-03T00:00:00.000Z")
    assert store.answer_rate() == [DailyRate("2024-05-01", 2, 1), DailyRate("2024-05-03", 1, 1)]
    assert store.answer_rate()[0].rate == pytest.approx(0.5)


def test_csv_export_has_every_record_and_defuses_formulas(store):
    a = store.record("ask", answered("When do you ship? my number is 555 123 4567"), at="2024-05-01T10:00:00.000Z")
    b = store.record("draft", refused("=HYPERLINK(\"http://evil.example\")"), at="2024-05-01T11:00:00.000Z")
    store.rate(a, True)
    buf = io.StringIO()
    assert store.export_csv(buf) == 2
    rows = list(csv.DictReader(io.StringIO(buf.getvalue())))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [r["id"] for r in rows] == [str(a), str(b)]
    assert rows[0]["question"] == "When do you ship? my number is [phone]"
    assert (rows[0]["rating"], rows[0]["cited_ids"], rows[0]["answered"]) == ("helpful", "faq:shipping-1", "1")
    assert rows[1]["question"] == "'=HYPERLINK(\"http://evil.example\")"  # not a formula in a spreadsheet
    assert (rows[1]["rating"], rows[1]["refusal_reason"], rows[1]["kind"]) == ("", "not_covered", "draft")
    assert store.export_csv_text() == buf.getvalue()


def test_database_from_a_newer_version_is_refused(tmp_path):
    with FeedbackStore.open(tmp_path) as s:
        path = s.path
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version=99")
    conn.close()
    with pytest.raises(FeedbackError, match="schema version 99, expected 1"):
        FeedbackStore.open(tmp_path)
