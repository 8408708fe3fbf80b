"""The feedback log: every question, answer and rating, with personal data masked, in SQLite
(one machine) or PostgreSQL (several replicas sharing one log).

Insights for the store owner (the questions the policies don't cover, the answers customers
found unhelpful, the answer rate per day) are plain queries over the same two tables.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import math
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from assistant.errors import FeedbackError, RatingRefusedError, StoreUnavailableError
from assistant.schema import Answer
from assistant.server.database import (
    DB_NAME,
    Database,
    DatabaseURL,
    open_database,
    parse_database_url,
)
from assistant.server.pii import mask_pii

__all__ = ["DB_NAME", "SCHEMA_VERSION", "FeedbackStore", "mask_pii", "new_rating_token"]

SCHEMA_VERSION = 3
KINDS = ("ask", "draft")
INT_MIN, INT_MAX = -(2**63), 2**63 - 1  # SQLite INTEGER and PostgreSQL BIGINT

# Each version's statements, run once, in order, inside one transaction that also records the
# version in schema_version. {id} and {real} are the backend's column types (database.py).
MIGRATIONS: dict[int, list[str]] = {
    1: [
        """CREATE TABLE IF NOT EXISTS interactions (
            id             {id},
            created_at     TEXT    NOT NULL,              -- ISO 8601, UTC, milliseconds
            kind           TEXT    NOT NULL CHECK (kind IN ('ask', 'draft')),
            channel        TEXT    NOT NULL,              -- web, api, gradio_api
            question       TEXT    NOT NULL,              -- masked by mask_pii before it is written
            answer         TEXT    NOT NULL,
            answered       INTEGER NOT NULL CHECK (answered IN (0, 1)),
            confidence     {real}  NOT NULL,
            cited_ids      TEXT    NOT NULL,              -- JSON list of passage ids, in citation order
            refusal_reason TEXT,
            latency_ms     {real}  NOT NULL
        )""",
        "CREATE INDEX IF NOT EXISTS interactions_created ON interactions (created_at)",
        "CREATE INDEX IF NOT EXISTS interactions_answered ON interactions (answered)",
        """CREATE TABLE IF NOT EXISTS ratings (
            interaction_id BIGINT  PRIMARY KEY REFERENCES interactions (id) ON DELETE CASCADE,
            helpful        INTEGER NOT NULL CHECK (helpful IN (0, 1)),
            rated_at       TEXT    NOT NULL
        )""",
    ],
    # The SHA-256 of the token returned with the answer: only its requester can rate it.
    # Rows logged before version 2 have none and cannot be rated through the API.
    2: ["ALTER TABLE interactions ADD COLUMN rating_token TEXT"],
    # The standalone question answered when a follow-up was read with its conversation ("what
    # about Asia?" -> "How long does delivery to Asia take?"), masked; NULL when it is the question.
    3: ["ALTER TABLE interactions ADD COLUMN resolved_question TEXT"],
}
SCHEMA_VERSION_TABLE = "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"


def new_rating_token() -> str:
    """An unguessable token (192 random bits) that lets whoever got an answer rate it."""
    return secrets.token_urlsafe(24)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


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
    resolved_question: str | None = None  # the standalone question answered, when not ``question`` itself


@dataclass(frozen=True)
class RefusedQuestion:
    """A question the policies did not cover, grouped case- and punctuation-insensitively."""

    question: str
    count: int
    last_asked: str
    # A follow-up's standalone reading ("How long does delivery to Brazil take?" for "what about
    # Brazil?"): such questions are grouped by it. None when the question stood alone.
    resolved_question: str | None = None


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
    "cited_ids", "answer", "latency_ms", "rating", "resolved_question",
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
    """The feedback log on either backend: ``FeedbackStore(path)`` for a SQLite file,
    ``FeedbackStore("postgresql://...")`` (or ``"sqlite:///PATH"``) for a database URL.

    Safe to share between the server's threads; several processes (replicas) may open the
    same database. The schema is created or migrated on open and its version recorded in
    ``schema_version``; a SQLite file is checked with ``PRAGMA quick_check`` first, and again
    by :meth:`health` at most every ``check_interval_s`` seconds.

    Raises:
        ConfigError: a malformed URL.
        FeedbackError: the database cannot be opened, reached or migrated, or it is damaged.
    """

    def __init__(self, target: str | Path | DatabaseURL, *, check_interval_s: float = 30.0, **kwargs) -> None:
        if isinstance(target, str) and "://" in target:
            target = parse_database_url(target)
        elif not isinstance(target, DatabaseURL):
            target = DatabaseURL("sqlite", path=Path(target), redacted=f"sqlite:///{target}")
        self.db: Database = open_database(target, **kwargs)
        self.url = target  # prints redacted
        self.path: Path | None = getattr(self.db, "path", None)
        self.backend = self.db.backend
        self.check_interval_s = check_interval_s
        self._checked_at = -math.inf
        try:
            self.db.check()
            self._migrate()
            self._checked_at = time.monotonic()
        except StoreUnavailableError as exc:
            self.db.close()
            raise FeedbackError(f"cannot use the feedback database: {exc.detail}") from None
        except BaseException:
            self.db.close()
            raise

    @classmethod
    def open(cls, data_dir: str | Path, **kwargs) -> FeedbackStore:
        """Open (creating it and its folder if needed) ``<data_dir>/feedback.sqlite3``."""
        folder = Path(data_dir)
        try:
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise FeedbackError(f"cannot create the data folder {folder}: {exc.strerror}") from None
        if not folder.is_dir():
            raise FeedbackError(f"data folder {folder} is not a folder")
        return cls(folder / DB_NAME, **kwargs)

    def _migrate(self) -> None:
        db = self.db
        with db.transaction() as tx:
            db.lock_schema(tx)  # PostgreSQL: a second replica starting now waits here
            tx.execute(SCHEMA_VERSION_TABLE)
            version = tx.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0]
            if version == 0 and db.backend == "sqlite":
                # A log from before schema_version existed kept its version in user_version.
                version = tx.execute("PRAGMA user_version").fetchone()[0]
                if version:
                    tx.execute("INSERT INTO schema_version (version, applied_at) VALUES (?, ?)", (version, _now()))
            if version > SCHEMA_VERSION:
                raise FeedbackError(
                    f"{self.url}: feedback database schema version {version}, expected {SCHEMA_VERSION} "
                    "(it was written by a newer version of this program)"
                )
            for step in range(version + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS[step]:
                    tx.execute(db.ddl(statement))
                tx.execute("INSERT INTO schema_version (version, applied_at) VALUES (?, ?)", (step, _now()))
            if db.backend == "sqlite":
                tx.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        self.schema_version = SCHEMA_VERSION

    def close(self) -> None:
        """Close the database (SQLite: every thread's connection, checkpointing the WAL);
        later calls raise FeedbackError."""
        self.db.close()

    def __enter__(self) -> FeedbackStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- writes ---

    def record(
        self, kind: str, answer: Answer, *, channel: str = "web", at: str | None = None, rating_token: str | None = None
    ) -> int:
        """Store one answered (or refused) question, masked; return its interaction id.

        Args:
            rating_token: the token handed to the requester (see :func:`new_rating_token`);
                only its hash is stored, and :meth:`rate_with_token` checks it.
        """
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        row = (
            at or _now(), kind, channel, mask_pii(answer.question), answer.answer, int(answer.answered),
            float(answer.confidence), json.dumps([c.id for c in answer.citations]), answer.refusal_reason,
            float(answer.latency_ms), None if rating_token is None else _token_hash(rating_token),
            mask_pii(resolved) if (resolved := answer.resolved_question) and resolved != answer.question else None,
        )
        with self.db.transaction() as tx:
            cur = tx.execute(
                "INSERT INTO interactions (created_at, kind, channel, question, answer, answered, confidence,"
                " cited_ids, refusal_reason, latency_ms, rating_token, resolved_question)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " RETURNING id",
                row,
            )
            return int(cur.fetchone()[0])

    def rate(self, interaction_id: int, helpful: bool | None, *, at: str | None = None) -> None:
        """Set (or with ``None`` remove) the helpful / not helpful rating of one interaction.

        For callers that already hold the id on the server (the web chat); a client's rating
        goes through :meth:`rate_with_token`.
        """
        _check_id(interaction_id)
        with self.db.transaction() as tx:
            if tx.execute("SELECT 1 FROM interactions WHERE id = ?", (interaction_id,)).fetchone() is None:
                raise FeedbackError(f"no answer with interaction id {interaction_id}")
            self._set_rating(tx, interaction_id, helpful, at)

    def rate_with_token(self, interaction_id: int, token: str, helpful: bool | None, *, at: str | None = None) -> None:
        """Rate an interaction on behalf of a client that shows the answer's ``rating_token``.

        Raises:
            RatingRefusedError: the token is not this answer's, or there is no such answer
                (one message for both, so the ids that exist cannot be probed).
        """
        refused = RatingRefusedError(
            f"the rating_token does not match interaction id {interaction_id}: "
            "send the interaction_id and rating_token returned with the answer"
        )
        if isinstance(interaction_id, bool) or not isinstance(interaction_id, int) or not isinstance(token, str):
            raise refused
        if not INT_MIN <= interaction_id <= INT_MAX:
            raise refused
        presented = _token_hash(token)
        with self.db.transaction() as tx:
            row = tx.execute("SELECT rating_token FROM interactions WHERE id = ?", (interaction_id,)).fetchone()
            stored = row[0] if row is not None and row[0] is not None else ""
            if not hmac.compare_digest(stored.encode(), presented.encode()):
                raise refused
            self._set_rating(tx, interaction_id, helpful, at)

    @staticmethod
    def _set_rating(tx, interaction_id: int, helpful: bool | None, at: str | None) -> None:
        if helpful is None:
            tx.execute("DELETE FROM ratings WHERE interaction_id = ?", (interaction_id,))
        else:
            tx.execute(
                "INSERT INTO ratings (interaction_id, helpful, rated_at) VALUES (?, ?, ?)"
                " ON CONFLICT (interaction_id) DO UPDATE SET helpful = excluded.helpful, rated_at = excluded.rated_at",
                (interaction_id, int(bool(helpful)), at or _now()),
            )

    # --- reads ---

    def get(self, interaction_id: int) -> Interaction:
        _check_id(interaction_id)
        rows = self._interactions("WHERE i.id = ?", (interaction_id,))
        if not rows:
            raise FeedbackError(f"no answer with interaction id {interaction_id}")
        return rows[0]

    def recent(self, limit: int = 50) -> list[Interaction]:
        """The latest interactions, newest first."""
        return self._interactions("ORDER BY i.id DESC LIMIT ?", (limit,))

    def _interactions(self, tail: str, params: tuple) -> list[Interaction]:
        rows = self.db.query(
            "SELECT i.id, i.created_at, i.kind, i.channel, i.question, i.answer, i.answered, i.confidence,"
            " i.cited_ids, i.refusal_reason, i.latency_ms, r.helpful, i.resolved_question"
            " FROM interactions i LEFT JOIN ratings r ON r.interaction_id = i.id " + tail,
            params,
        )
        return [
            Interaction(
                id=r[0], created_at=r[1], kind=r[2], channel=r[3], question=r[4], answer=r[5], answered=bool(r[6]),
                confidence=r[7], cited_ids=json.loads(r[8]), refusal_reason=r[9], latency_ms=r[10],
                helpful=None if r[11] is None else bool(r[11]), resolved_question=r[12],
            )
            for r in rows
        ]

    def totals(self) -> Totals:
        (n, answered, ratings, helpful), = self.db.query(
            "SELECT (SELECT count(*) FROM interactions), (SELECT coalesce(sum(answered), 0) FROM interactions),"
            " (SELECT count(*) FROM ratings), (SELECT coalesce(sum(helpful), 0) FROM ratings)"
        )
        return Totals(interactions=int(n), answered=int(answered), ratings=int(ratings), helpful=int(helpful))

    def health(self) -> dict:
        """What /healthz shows of the log: backend, redacted URL, schema version and counts, or the error."""
        out: dict = {"backend": self.backend, "database": str(self.url), "schema_version": SCHEMA_VERSION}
        try:
            now = time.monotonic()
            # The full check reads the whole SQLite file: at most once per check_interval_s.
            if now - self._checked_at >= self.check_interval_s:
                self.db.check()
                self._checked_at = now
            totals = self.totals()
        except FeedbackError as exc:
            self._checked_at = -math.inf  # checked again on the next call
            return {**out, "status": "error", "error": getattr(exc, "detail", str(exc)), "interactions": None, "ratings": None}
        return {**out, "status": "ok", "interactions": totals.interactions, "ratings": totals.ratings}

    def top_refused(self, limit: int = 10) -> list[RefusedQuestion]:
        """The most frequent questions the policies did not answer: the content gaps."""
        counts: dict[str, list] = {}
        # A vague message answered with topics to choose from ("clarify") is no content gap.
        for question, created, resolved in self.db.stream(
            "SELECT question, created_at, resolved_question FROM interactions"
            " WHERE answered = 0 AND (refusal_reason IS NULL OR refusal_reason <> 'clarify') ORDER BY id"
        ):
            key = _normalise(resolved or question)  # a follow-up counts as the question it stood for
            entry = counts.setdefault(key, [question, 0, created, resolved])
            entry[0], entry[1], entry[2], entry[3] = question, entry[1] + 1, max(entry[2], created), resolved
        # Most asked first; among equals, the most recently asked first (two stable sorts).
        ranked = sorted(counts.values(), key=lambda e: e[2], reverse=True)
        ranked.sort(key=lambda e: e[1], reverse=True)
        return [RefusedQuestion(question=q, count=c, last_asked=t, resolved_question=r) for q, c, t, r in ranked[:limit]]

    def lowest_rated(self, limit: int = 10) -> list[RatedAnswer]:
        """Answers with at least one rating, least helpful first (then most often rated down)."""
        groups: dict[tuple[str, str], list] = {}
        for question, answer, helpful in self.db.stream(
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
        rows = self.db.query(
            "SELECT substr(created_at, 1, 10) AS day, count(*), sum(answered) FROM interactions GROUP BY day ORDER BY day"
        )
        return [DailyRate(day=d, total=int(t), answered=int(a)) for d, t, a in rows]

    def export_csv(self, out: IO[str]) -> int:
        """Write every interaction with its rating as CSV to ``out``; return the number of rows."""
        writer = csv.writer(out)
        writer.writerow(CSV_COLUMNS)
        n = 0
        cursor = self.db.stream(
            "SELECT i.id, i.created_at, i.kind, i.channel, i.question, i.answered, i.confidence, i.refusal_reason,"
            " i.cited_ids, i.answer, i.latency_ms, r.helpful, i.resolved_question"
            " FROM interactions i LEFT JOIN ratings r ON r.interaction_id = i.id ORDER BY i.id"
        )
        for row in cursor:
            *head, helpful, resolved = row
            rating = "" if helpful is None else ("helpful" if helpful else "not helpful")
            cited = " ".join(json.loads(head[8]))
            values = [*head[:8], cited, *head[9:], rating, resolved or ""]
            writer.writerow([_csv_cell(v) for v in values])
            n += 1
        return n

    def export_csv_text(self) -> str:
        buf = io.StringIO()
        self.export_csv(buf)
        return buf.getvalue()


def _check_id(interaction_id: int) -> None:
    if isinstance(interaction_id, bool) or not isinstance(interaction_id, int):
        raise FeedbackError(f"interaction id must be an integer, got {interaction_id!r}")
    if not INT_MIN <= interaction_id <= INT_MAX:  # the database would overflow
        raise FeedbackError(f"no answer with interaction id {interaction_id}")
