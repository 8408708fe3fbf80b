"""The feedback log: every question, answer and rating in SQLite (WAL), with personal data masked.

Insights for the store owner (the questions the policies don't cover, the answers customers
found unhelpful, the answer rate per day) are plain queries over the same two tables.
"""

from __future__ import annotations

import csv
import io
import json
import re
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from assistant.errors import FeedbackError
from assistant.schema import Answer

DB_NAME = "feedback.sqlite3"
SCHEMA_VERSION = 1
KINDS = ("ask", "draft")
SQLITE_INT_MIN, SQLITE_INT_MAX = -(2**63), 2**63 - 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS interactions (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at     TEXT    NOT NULL,              -- ISO 8601, UTC, milliseconds
    kind           TEXT    NOT NULL CHECK (kind IN ('ask', 'draft')),
    channel        TEXT    NOT NULL,              -- web, api, gradio_api
    question       TEXT    NOT NULL,              -- masked by mask_pii before it is written
    answer         TEXT    NOT NULL,
    answered       INTEGER NOT NULL CHECK (answered IN (0, 1)),
    confidence     REAL    NOT NULL,
    cited_ids      TEXT    NOT NULL,              -- JSON list of passage ids, in citation order
    refusal_reason TEXT,
    latency_ms     REAL    NOT NULL
);
CREATE INDEX IF NOT EXISTS interactions_created ON interactions (created_at);
CREATE INDEX IF NOT EXISTS interactions_answered ON interactions (answered);
CREATE TABLE IF NOT EXISTS ratings (
    interaction_id INTEGER PRIMARY KEY REFERENCES interactions (id) ON DELETE CASCADE,
    helpful        INTEGER NOT NULL CHECK (helpful IN (0, 1)),
    rated_at       TEXT    NOT NULL
);
"""

# --- personal data -------------------------------------------------------------------------

EMAIL_RE = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# 13 to 19 digits, optionally grouped by single spaces or dashes, not starting with 0 (no card
# number does; international phone numbers such as 0033... do): the shape of every card number.
# No Luhn check on purpose: a mistyped card number is still a card number.
CARD_RE = re.compile(r"(?<![\d+-])[1-9](?:[ -]?\d){12,18}(?![\d-])")
# 7 to 15 digits (E.164 allows 15) with an optional + and the usual separators. Long order
# numbers match too: for stored questions, masking too much beats keeping a phone number.
PHONE_RE = re.compile(r"(?<![\w+])(?:\+|\(\+?)?\d(?:[ ().\-/]{0,2}\d){6,14}(?![\w])")
DATE_RE = re.compile(r"\d{4}([-/.])\d{1,2}\1\d{1,2}|\d{1,2}([-/.])\d{1,2}\2(?:\d{4}|\d{2})")


def mask_pii(text: str) -> str:
    """Replace email addresses, card-like numbers and phone numbers with ``[email]``, ``[card]``, ``[phone]``.

    Dates (2024-05-01, 01/05/2024) are kept: they look like phone numbers but carry no identity.
    """
    text = EMAIL_RE.sub("[email]", text)
    text = CARD_RE.sub("[card]", text)
    return PHONE_RE.sub(lambda m: m.group(0) if DATE_RE.fullmatch(m.group(0)) else "[phone]", text)


# --- records -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Interaction:
    id: int
    created_at: str
    kind: str
    channel: str
    question: str
    answer: str
    answered: bool
    confidence: float
    cited_ids: list[str]
    refusal_reason: str | None
    latency_ms: float
    helpful: bool | None  # the rating, None when not rated


@dataclass(frozen=True)
class RefusedQuestion:
    """A question the policies did not cover, grouped case- and punctuation-insensitively."""

    question: str
    count: int
    last_asked: str


@dataclass(frozen=True)
class RatedAnswer:
    question: str
    answer: str
    helpful: int
    not_helpful: int

    @property
    def helpful_rate(self) -> float:
        return self.helpful / (self.helpful + self.not_helpful)


@dataclass(frozen=True)
class DailyRate:
    day: str  # YYYY-MM-DD (UTC)
    total: int
    answered: int

    @property
    def rate(self) -> float:
        return self.answered / self.total


@dataclass(frozen=True)
class Totals:
    interactions: int
    answered: int
    ratings: int
    helpful: int


CSV_COLUMNS = (
    "id", "created_at", "kind", "channel", "question", "answered", "confidence", "refusal_reason",
    "cited_ids", "answer", "latency_ms", "rating",
)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _normalise(question: str) -> str:
    return " ".join(question.lower().split()).rstrip(" ?!.")


def _csv_cell(value: object) -> object:
    # A cell starting with = + - @ is run as a formula by spreadsheet apps: stored questions are
    # customer text, so quote them (the OWASP advice for CSV injection).
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


class FeedbackStore:
    """The SQLite feedback database: one connection per thread, WAL journal, writes in short transactions.

    Safe to share between the server's threads; several processes may also open the same file
    (they wait up to ``busy_timeout_s`` for each other's writes).
    """

    def __init__(self, path: str | Path, *, busy_timeout_s: float = 10.0) -> None:
        self.path = Path(path)
        self.busy_timeout_s = busy_timeout_s
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        self._closed = False
        try:
            conn = self._conn()
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            conn.executescript(SCHEMA)
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version == 0:
                conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except sqlite3.DatabaseError as exc:
            self.close()
            raise FeedbackError(f"{self.path}: cannot use the feedback database ({exc})") from None
        if version not in (0, SCHEMA_VERSION):
            self.close()
            raise FeedbackError(f"{self.path}: feedback database schema version {version}, expected {SCHEMA_VERSION}")
        if mode.lower() != "wal":
            self.close()
            raise FeedbackError(f"{self.path}: SQLite refused WAL mode (journal_mode={mode}); use a local disk for the data folder")

    @classmethod
    def open(cls, data_dir: str | Path, **kwargs) -> FeedbackStore:
        """Open (creating it and its folder if needed) ``<data_dir>/feedback.sqlite3``."""
        folder = Path(data_dir)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise FeedbackError(f"cannot create the data folder {folder}: {exc.strerror}") from None
        if not folder.is_dir():
            raise FeedbackError(f"data folder {folder} is not a folder")
        return cls(folder / DB_NAME, **kwargs)

    # --- connections ---

    def _conn(self) -> sqlite3.Connection:
        if self._closed:
            raise FeedbackError(f"{self.path}: the feedback store is closed")
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(
                    self.path, timeout=self.busy_timeout_s, isolation_level=None, check_same_thread=False
                )
                conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_s * 1000)}")
                # NORMAL in WAL mode: a commit survives the process being killed; only a power cut
                # can lose the last transactions, never corrupt the file.
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute("PRAGMA foreign_keys=ON")
            except sqlite3.DatabaseError as exc:
                if conn is not None:
                    conn.close()
                raise FeedbackError(f"{self.path}: cannot use the feedback database ({exc})") from None
            self._local.conn = conn
            with self._conns_lock:
                self._conns.append(conn)
        return conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def close(self) -> None:
        """Close every thread's connection (checkpointing the WAL); later calls raise FeedbackError."""
        self._closed = True
        with self._conns_lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            conn.close()

    def __enter__(self) -> FeedbackStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- writes ---

    def record(self, kind: str, answer: Answer, *, channel: str = "web", at: str | None = None) -> int:
        """Store one answered (or refused) question, masked; return its interaction id."""
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        row = (
            at or _now(), kind, channel, mask_pii(answer.question), answer.answer, int(answer.answered),
            float(answer.confidence), json.dumps([c.id for c in answer.citations]), answer.refusal_reason,
            float(answer.latency_ms),
        )
        with self._write() as conn:
            cur = conn.execute(
                "INSERT INTO interactions (created_at, kind, channel, question, answer, answered, confidence,"
                " cited_ids, refusal_reason, latency_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                row,
            )
            return int(cur.lastrowid)

    def rate(self, interaction_id: int, helpful: bool | None, *, at: str | None = None) -> None:
        """Set (or with ``None`` remove) the helpful / not helpful rating of one interaction."""
        if isinstance(interaction_id, bool) or not isinstance(interaction_id, int):
            raise FeedbackError(f"interaction id must be an integer, got {interaction_id!r}")
        if not SQLITE_INT_MIN <= interaction_id <= SQLITE_INT_MAX:  # SQLite would raise OverflowError
            raise FeedbackError(f"no answer with interaction id {interaction_id}")
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM interactions WHERE id = ?", (interaction_id,)).fetchone() is None:
                raise FeedbackError(f"no answer with interaction id {interaction_id}")
            if helpful is None:
                conn.execute("DELETE FROM ratings WHERE interaction_id = ?", (interaction_id,))
            else:
                conn.execute(
                    "INSERT INTO ratings (interaction_id, helpful, rated_at) VALUES (?, ?, ?)"
                    " ON CONFLICT (interaction_id) DO UPDATE SET helpful = excluded.helpful, rated_at = excluded.rated_at",
                    (interaction_id, int(bool(helpful)), at or _now()),
                )

    # --- reads ---

    def get(self, interaction_id: int) -> Interaction:
        if not SQLITE_INT_MIN <= interaction_id <= SQLITE_INT_MAX:
            raise FeedbackError(f"no answer with interaction id {interaction_id}")
        rows = self._interactions("WHERE i.id = ?", (interaction_id,))
        if not rows:
            raise FeedbackError(f"no answer with interaction id {interaction_id}")
        return rows[0]

    def recent(self, limit: int = 50) -> list[Interaction]:
        """The latest interactions, newest first."""
        return self._interactions("ORDER BY i.id DESC LIMIT ?", (limit,))

    def _interactions(self, tail: str, params: tuple) -> list[Interaction]:
        rows = self._conn().execute(
            "SELECT i.id, i.created_at, i.kind, i.channel, i.question, i.answer, i.answered, i.confidence,"
            " i.cited_ids, i.refusal_reason, i.latency_ms, r.helpful"
            " FROM interactions i LEFT JOIN ratings r ON r.interaction_id = i.id " + tail,
            params,
        ).fetchall()
        return [
            Interaction(
                id=r[0], created_at=r[1], kind=r[2], channel=r[3], question=r[4], answer=r[5], answered=bool(r[6]),
                confidence=r[7], cited_ids=json.loads(r[8]), refusal_reason=r[9], latency_ms=r[10],
                helpful=None if r[11] is None else bool(r[11]),
            )
            for r in rows
        ]

    def totals(self) -> Totals:
        conn = self._conn()
        n, answered = conn.execute("SELECT count(*), coalesce(sum(answered), 0) FROM interactions").fetchone()
        ratings, helpful = conn.execute("SELECT count(*), coalesce(sum(helpful), 0) FROM ratings").fetchone()
        return Totals(interactions=n, answered=answered, ratings=ratings, helpful=helpful)

    def top_refused(self, limit: int = 10) -> list[RefusedQuestion]:
        """The most frequent questions the policies did not answer: the content gaps."""
        counts: dict[str, list] = {}
        for question, created in self._conn().execute(
            "SELECT question, created_at FROM interactions WHERE answered = 0 ORDER BY id"
        ):
            key = _normalise(question)
            entry = counts.setdefault(key, [question, 0, created])
            entry[0], entry[1], entry[2] = question, entry[1] + 1, max(entry[2], created)
        # Most asked first; among equals, the most recently asked first (two stable sorts).
        ranked = sorted(counts.values(), key=lambda e: e[2], reverse=True)
        ranked.sort(key=lambda e: e[1], reverse=True)
        return [RefusedQuestion(question=q, count=c, last_asked=t) for q, c, t in ranked[:limit]]

    def lowest_rated(self, limit: int = 10) -> list[RatedAnswer]:
        """Answers with at least one rating, least helpful first (then most often rated down)."""
        groups: dict[tuple[str, str], list] = {}
        for question, answer, helpful in self._conn().execute(
            "SELECT i.question, i.answer, r.helpful FROM ratings r JOIN interactions i ON i.id = r.interaction_id"
            " ORDER BY i.id"
        ):
            entry = groups.setdefault((_normalise(question), answer), [question, answer, 0, 0])
            entry[0] = question
            entry[2 if helpful else 3] += 1
        rated = [RatedAnswer(question=q, answer=a, helpful=h, not_helpful=n) for q, a, h, n in groups.values()]
        rated.sort(key=lambda r: (r.helpful_rate, -r.not_helpful))
        return rated[:limit]

    def answer_rate(self) -> list[DailyRate]:
        """Questions and answered questions per UTC day, oldest first."""
        rows = self._conn().execute(
            "SELECT substr(created_at, 1, 10) AS day, count(*), sum(answered) FROM interactions GROUP BY day ORDER BY day"
        ).fetchall()
        return [DailyRate(day=d, total=t, answered=a) for d, t, a in rows]

    def export_csv(self, out: IO[str]) -> int:
        """Write every interaction with its rating as CSV to ``out``; return the number of rows."""
        writer = csv.writer(out)
        writer.writerow(CSV_COLUMNS)
        n = 0
        cursor = self._conn().execute(
            "SELECT i.id, i.created_at, i.kind, i.channel, i.question, i.answered, i.confidence, i.refusal_reason,"
            " i.cited_ids, i.answer, i.latency_ms, r.helpful"
            " FROM interactions i LEFT JOIN ratings r ON r.interaction_id = i.id ORDER BY i.id"
        )
        for row in cursor:
            *head, helpful = row
            rating = "" if helpful is None else ("helpful" if helpful else "not helpful")
            cited = " ".join(json.loads(head[8]))
            values = [*head[:8], cited, *head[9:], rating]
            writer.writerow([_csv_cell(v) for v in values])
            n += 1
        return n

    def export_csv_text(self) -> str:
        buf = io.StringIO()
        self.export_csv(buf)
        return buf.getvalue()

