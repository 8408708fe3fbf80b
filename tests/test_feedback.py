"""The feedback log on both backends (SQLite and PostgreSQL): masking, records and ratings,
rating tokens, insights, CSV export, schema versions, WAL, file mode, corruption and threads."""

import csv
import io
import os
import sqlite3
import stat
import threading

import pytest

from assistant.errors import FeedbackError, RatingRefusedError
from assistant.schema import Answer, Citation, SupportContact
from assistant.server.feedback import (
    CSV_COLUMNS,
    DB_NAME,
    SCHEMA_VERSION,
    DailyRate,
    FeedbackStore,
    RatedAnswer,
    RefusedQuestion,
    mask_pii,
    new_rating_token,
)

CONTACT = SupportContact(text="help@shop.example", kind="email", passage_id="faq:contact-1")


def answered(question: str, answer: str = "Orders ship in 2 days. [1]", ids=("faq:shipping-1",)) -> Answer:
    citations = [Citation(id=i, doc_id="faq", title="Shipping", text="Orders ship in 2 days.", score=0.8) for i in ids]
    return Answer(question=question, answered=True, answer=answer, confidence=0.9, citations=citations,
                  support_contact=CONTACT, latency_ms=12.5)


def refused(question: str) -> Answer:
    return Answer(question=question, answered=False, answer="I couldn't find this.", confidence=0.2,
                  support_contact=CONTACT, refusal_reason="not_covered", latency_ms=8.0)


@pytest.fixture
def store(database_url):
    """An empty store, once on SQLite and once on PostgreSQL."""
    with FeedbackStore(database_url) as s:
        yield s


@pytest.fixture
def sqlite_store(tmp_path):
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
        # full-width digits and signs (NFKC-normalised first)
        ("card ４１１１ １１１１ １１１１ １１１１", "card [card]"),
        ("call ＋４４ ２０ ７９４６ ０９５８", "call [phone]"),
        ("ｊａｎｅ＠ｅｘａｍｐｌｅ．ｃｏｍ", "[email]"),
        # obfuscated email addresses
        ("jane (at) example (dot) com", "[email]"),
        ("write to jane [at] example [dot] co [dot] uk today", "write to [email] today"),
        ("jane{at}example.com", "[email]"),
        ("jane.doe at example dot com please", "[email] please"),
        ("jane @ example . com", "[email]"),
        ("look at me. Thanks", "look at me. Thanks"),  # the word "at" alone is no address
        ("I looked at the site dot com", "I looked at the site dot com"),
        # IBANs, grouped or not, whole
        ("IBAN DE89 3704 0044 0532 0130 00, thanks", "IBAN [iban], thanks"),
        ("GB29NWBK60161331926819", "[iban]"),
        ("refund to gb29 nwbk 6016 1331 9268 19.", "refund to [iban]."),
        ("FR14 2004 1010 0505 0001 3M02 606", "[iban]"),
        ("AB12 CDEF GHIJ", "AB12 CDEF GHIJ"),  # too few digits for an IBAN
        # street addresses
        ("I live at 12 Baker Street, London", "I live at [address], London"),
        ("221B Baker St. please", "[address] please"),
        ("ship to 1600 pennsylvania avenue", "ship to [address]"),
        ("10 Downing St", "[address]"),
        ("4 Privet Drive, Little Whinging", "[address], Little Whinging"),
        ("Hauptstraße 5, Berlin", "[address], Berlin"),
        ("12 rue de Rivoli", "[address]"),
        ("I ordered 2 rings on the way", "I ordered 2 rings on the way"),  # no street: words and quantities
        ("can I drive 3 days to collect it", "can I drive 3 days to collect it"),
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
    raw = store.db.query("SELECT question FROM interactions WHERE id = ?", (iid,))[0][0]
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


def test_records_survive_reopening(database_url):
    with FeedbackStore(database_url) as s:
        iid = s.record("ask", answered("When do you ship?"))
        s.rate(iid, True)
    with FeedbackStore(database_url) as s:
        assert s.get(iid).helpful is True and s.totals().interactions == 1


def test_closed_store_refuses_use(database_url):
    s = FeedbackStore(database_url)
    s.close()
    with pytest.raises(FeedbackError, match="closed"):
        s.record("ask", answered("x"))


# --- rating tokens: only whoever got the answer can rate it --------------------------------


def test_rating_with_the_answers_token(store):
    token = new_rating_token()
    iid = store.record("ask", answered("When do you ship?"), rating_token=token)
    store.rate_with_token(iid, token, False)
    assert store.get(iid).helpful is False
    store.rate_with_token(iid, token, None)
    assert store.get(iid).helpful is None
    assert token not in str(store.db.query("SELECT * FROM interactions"))  # only its hash is kept
    assert len(token) >= 32 and new_rating_token() != token


@pytest.mark.parametrize("case", ["wrong token", "other answer's token", "unknown id", "no token stored", "id beyond 64 bits", "empty token"])
def test_a_rating_without_the_right_token_is_refused_alike(store, case):
    mine, theirs = new_rating_token(), new_rating_token()
    iid = store.record("ask", answered("When do you ship?"), rating_token=mine)
    other = store.record("ask", answered("Do you take PayPal?"), rating_token=theirs)
    legacy = store.record("ask", answered("Old answer"))  # logged before tokens existed
    target, token = {
        "wrong token": (iid, new_rating_token()),
        "other answer's token": (iid, theirs),
        "unknown id": (other + 100, mine),
        "no token stored": (legacy, ""),
        "id beyond 64 bits": (2**63, mine),
        "empty token": (iid, ""),
    }[case]
    # one message whether or not the id exists: ids cannot be probed
    with pytest.raises(RatingRefusedError, match=rf"^the rating_token does not match interaction id {target}: send"):
        store.rate_with_token(target, token, True)
    assert store.totals().ratings == 0


# --- schema versions -----------------------------------------------------------------------


def test_schema_version_is_recorded(store):
    assert [r[0] for r in store.db.query("SELECT version FROM schema_version ORDER BY version")] == [1, 2, 3]
    assert store.health()["schema_version"] == SCHEMA_VERSION == 3


def test_opening_twice_at_once_migrates_once(database_url):
    """Two replicas starting together on an empty database: both open, one schema."""
    errors, stores = [], []
    barrier = threading.Barrier(4)

    def open_one():
        barrier.wait()
        try:
            stores.append(FeedbackStore(database_url))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert [r[0] for r in stores[0].db.query("SELECT version FROM schema_version ORDER BY version")] == [1, 2, 3]
    for s in stores:
        s.close()


def test_database_from_a_newer_version_is_refused(database_url):
    with FeedbackStore(database_url) as s:
        s.db.query("SELECT 1")
        with s.db.transaction() as tx:
            tx.execute("INSERT INTO schema_version (version, applied_at) VALUES (?, ?)", (99, "2030-01-01"))
    with pytest.raises(FeedbackError, match=r"schema version 99, expected 3 \(it was written by a newer version"):
        FeedbackStore(database_url)


def test_legacy_sqlite_database_from_user_version_is_refused_when_newer(tmp_path):
    with FeedbackStore.open(tmp_path) as s:
        path = s.path
    conn = sqlite3.connect(path)
    conn.execute("DROP TABLE schema_version")
    conn.execute("PRAGMA user_version=99")
    conn.close()
    with pytest.raises(FeedbackError, match="schema version 99, expected 3"):
        FeedbackStore.open(tmp_path)


LEGACY_V1_SCHEMA = """
CREATE TABLE interactions (
    id INTEGER PRIMARY KEY AUTOINCREMENT, created_at TEXT NOT NULL, kind TEXT NOT NULL, channel TEXT NOT NULL,
    question TEXT NOT NULL, answer TEXT NOT NULL, answered INTEGER NOT NULL, confidence REAL NOT NULL,
    cited_ids TEXT NOT NULL, refusal_reason TEXT, latency_ms REAL NOT NULL
);
CREATE INDEX interactions_created ON interactions (created_at);
CREATE INDEX interactions_answered ON interactions (answered);
CREATE TABLE ratings (
    interaction_id INTEGER PRIMARY KEY REFERENCES interactions (id) ON DELETE CASCADE,
    helpful INTEGER NOT NULL, rated_at TEXT NOT NULL
);
INSERT INTO interactions VALUES (1, '2024-05-01T10:00:00.000Z', 'ask', 'web', 'old question', 'old answer', 1, 0.9, '[]', NULL, 5.0);
INSERT INTO ratings VALUES (1, 1, '2024-05-01T10:01:00.000Z');
PRAGMA user_version=1;
"""


def test_a_version_1_sqlite_log_is_migrated_and_keeps_its_rows(tmp_path):
    conn = sqlite3.connect(tmp_path / DB_NAME)
    conn.executescript(LEGACY_V1_SCHEMA)
    conn.close()
    with FeedbackStore.open(tmp_path) as s:
        old = s.get(1)
        assert (old.question, old.helpful, old.resolved_question) == ("old question", True, None)
        assert [r[0] for r in s.db.query("SELECT version FROM schema_version ORDER BY version")] == [1, 2, 3]
        token = new_rating_token()
        new = s.record("ask", answered("new question"), rating_token=token)
        s.rate_with_token(new, token, True)
        with pytest.raises(RatingRefusedError):  # rows from before tokens cannot be rated by clients
            s.rate_with_token(1, "", False)
    assert sqlite3.connect(tmp_path / DB_NAME).execute("PRAGMA user_version").fetchone()[0] == 3


# --- the database itself ---------------------------------------------------------------------


def test_database_is_in_wal_mode(sqlite_store):
    store = sqlite_store
    store.record("ask", answered("When do you ship?"))
    conn = sqlite3.connect(store.path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.path.with_name(store.path.name + "-wal").exists()
    assert store.db._conn().execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL: synced before acknowledged


def test_database_files_are_private(tmp_path):
    """The log holds customers' questions: its file (and WAL, shared memory) is 0600, its new folder 0700."""
    with FeedbackStore.open(tmp_path / "data") as s:
        s.record("ask", answered("When do you ship?"))
        for suffix in ("", "-wal", "-shm"):
            mode = stat.S_IMODE(os.stat(f"{s.path}{suffix}").st_mode)
            assert mode == 0o600, (suffix, oct(mode))
    assert stat.S_IMODE((tmp_path / "data").stat().st_mode) == 0o700


def test_an_older_world_readable_database_is_made_private(tmp_path):
    path = tmp_path / DB_NAME
    sqlite3.connect(path).close()
    path.chmod(0o644)
    FeedbackStore.open(tmp_path).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def _filled_database(folder, n: int = 400):
    with FeedbackStore.open(folder) as s:
        for k in range(n):
            s.record("ask", answered(f"question number {k} about shipping to a faraway place" * 3))
        return s.path


@pytest.mark.parametrize("page", ["second", "middle", "last"])
def test_4kib_of_corruption_is_a_clear_error_on_open(tmp_path, page):
    """4 KiB of garbage in a real log (closed cleanly: WAL checkpointed into the file) is
    found by PRAGMA quick_check on open: one clear error, not answers that silently stop logging."""
    path = _filled_database(tmp_path)
    size = path.stat().st_size
    assert size >= 16 * 4096
    offset = {"second": 4096, "middle": (size // 4096 // 2) * 4096, "last": size - 4096}[page]
    with path.open("r+b") as f:
        f.seek(offset)
        f.write(os.urandom(4096))
    with pytest.raises(FeedbackError, match=r"feedback\.sqlite3: the feedback database is damaged \(quick_check: .+\); move it aside"):
        FeedbackStore.open(tmp_path)


def test_data_dir_that_is_a_file_is_a_clear_error(tmp_path):
    (tmp_path / "data").write_text("not a folder")
    with pytest.raises(FeedbackError, match="cannot create the data folder .*data"):
        FeedbackStore.open(tmp_path / "data")


def test_corrupt_database_is_a_clear_error(tmp_path):
    (tmp_path / "feedback.sqlite3").write_bytes(b"this is not an sqlite database" * 100)
    with pytest.raises(FeedbackError, match=r"feedback\.sqlite3: cannot use the feedback database"):
        FeedbackStore.open(tmp_path)


def test_concurrent_writers_lose_nothing(database_url):
    """Threads sharing one store and a second store on the same database (as a second process
    would) write at once: every record and rating lands, ids are unique, the database is sound."""
    shared = FeedbackStore(database_url)
    other = FeedbackStore(database_url)
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
        rows = shared.db.query("SELECT question FROM interactions WHERE channel = ? ORDER BY id", (f"t{n}",))
        assert [r[0] for r in rows] == [f"thread {n} question {k}" for k in range(per_thread)]
    path = shared.path
    shared.close()
    other.close()
    if path is not None:
        assert sqlite3.connect(path).execute("PRAGMA integrity_check").fetchone()[0] == "ok"


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
