"""Where the feedback log lives: a SQLite file (one machine) or a PostgreSQL server (replicas).

The store writes its SQL once, with ``?`` placeholders and ``{id}`` / ``{real}`` column types;
each backend translates them here, so both run the same schema and the same queries.
"""

from __future__ import annotations

import os
import re
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from assistant.errors import ConfigError, FeedbackError, StoreUnavailableError

DB_NAME = "feedback.sqlite3"
SCHEMES = ("sqlite", "postgresql", "postgres")
# Two replicas starting at once take turns migrating the schema (any constant works; this one
# is "feedback" in ASCII).
PG_MIGRATION_LOCK = 0x666565646261636B


@dataclass(frozen=True)
class DatabaseURL:
    """A parsed ``--database-url``: ``sqlite:///PATH`` or ``postgresql://user:pass@host:port/db``."""

    backend: str  # "sqlite" or "postgresql"
    path: Path | None = None  # SQLite only
    conninfo: str = field(default="", repr=False)  # PostgreSQL only: the URL as given, password included
    redacted: str = ""  # the URL with its password replaced by ***: the only form that is logged or shown

    def __str__(self) -> str:
        return self.redacted


def redact(url: str) -> str:
    """``url`` with the password of its user part replaced by ``***``."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return re.sub(r"(//[^:/@]*:)[^@/]*@", r"\1***@", url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = netloc[0].split(":", 1)[0]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[1]}"))


def parse_database_url(text: str) -> DatabaseURL:
    """Check the form of a database URL (nothing is opened or connected here).

    Raises:
        ConfigError: an unknown scheme, a SQLite URL without a path, a bad port.
    """
    shown = redact(text.strip())
    scheme, sep, rest = text.strip().partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in SCHEMES:
        raise ConfigError(
            f"--database-url must be sqlite:///PATH or postgresql://user:password@host:port/database, got {shown!r}"
        )
    if scheme == "sqlite":
        if not rest.startswith("/") or len(rest) < 2:
            raise ConfigError(
                f"--database-url {shown!r}: a SQLite URL is sqlite:///PATH (three slashes, then the file: "
                "sqlite:///data/feedback.sqlite3, or sqlite:////srv/feedback.sqlite3 for an absolute path)"
            )
        return DatabaseURL("sqlite", path=Path(urllib.parse.unquote(rest[1:])), redacted=shown)
    try:
        parts = urllib.parse.urlsplit(text.strip())
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError as exc:
        raise ConfigError(f"--database-url {shown!r}: {str(exc).replace(text, shown)}") from None
    if not parts.path.strip("/") and "dbname=" not in parts.query:
        raise ConfigError(f"--database-url {shown!r}: name the database, e.g. postgresql://user:password@host:5432/assistant")
    return DatabaseURL("postgresql", conninfo=text.strip(), redacted=shown)


def sqlite_url(path: str | Path) -> str:
    """The ``sqlite:///`` URL of a file (absolute paths get the fourth slash)."""
    return f"sqlite:///{path}"


class Cursor(Protocol):
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...


class Database:
    """A connection source with one shape on both backends: ``transaction()`` for writes,
    ``query()`` / ``stream()`` for reads, all with ``?`` placeholders."""

    backend = ""
    url: DatabaseURL
    # Column types that differ between the backends, for the store's CREATE statements.
    types: dict[str, str] = {}

    def transaction(self):  # pragma: no cover - the backends implement it
        raise NotImplementedError

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        with self.transaction() as tx:
            return tx.execute(sql, params).fetchall()

    def stream(self, sql: str, params: Sequence[Any] = ()) -> Iterator[tuple]:
        yield from self.query(sql, params)

    def lock_schema(self, tx) -> None:
        """Called first in the migration transaction: other processes wait until it commits."""

    def check(self) -> None:
        """Raise :class:`FeedbackError` when the database is damaged (SQLite) or unreachable."""

    def close(self) -> None:
        pass

    def ddl(self, statement: str) -> str:
        return statement.format(**self.types)


# --- SQLite --------------------------------------------------------------------------------


class _SQLiteTx:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        return self.conn.execute(sql, tuple(params))


class SQLiteDatabase(Database):
    """One SQLite file: one connection per thread, WAL journal, ``synchronous=FULL`` (a commit
    is on disk before it is acknowledged), created readable by its owner only (0600).

    Several processes on one machine may open the same file; they wait up to ``busy_timeout_s``
    for each other's writes.
    """

    backend = "sqlite"
    types = {"id": "INTEGER PRIMARY KEY AUTOINCREMENT", "real": "REAL"}

    def __init__(self, url: DatabaseURL, *, busy_timeout_s: float = 10.0) -> None:
        self.url = url
        self.path = url.path
        self.busy_timeout_s = busy_timeout_s
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        self._closed = False
        folder = self.path.parent
        try:
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise FeedbackError(f"cannot create the data folder {folder}: {exc.strerror}") from None
        if not folder.is_dir():
            raise FeedbackError(f"data folder {folder} is not a folder")
        self._create_private()
        # Several replicas opening a new file at once all ask for WAL mode: that needs the file to
        # themselves, and SQLite answers SQLITE_BUSY at once (without waiting) to the one that
        # would otherwise deadlock; it asks again until busy_timeout_s has passed.
        deadline = time.monotonic() + self.busy_timeout_s
        while True:
            try:
                conn = self._conn()
                mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                break
            except sqlite3.DatabaseError as exc:
                if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_BUSY and time.monotonic() < deadline:
                    time.sleep(0.02)
                    continue
                self.close()
                raise FeedbackError(f"{self.path}: cannot use the feedback database ({exc})") from None
        if mode.lower() != "wal":
            self.close()
            raise FeedbackError(f"{self.path}: SQLite refused WAL mode (journal_mode={mode}); use a local disk for the data folder")

    def _create_private(self) -> None:
        # Created 0600 before SQLite opens it: its -wal and -shm files take the same mode.
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        except FileExistsError:
            st = self.path.stat()
            if st.st_mode & 0o077 and st.st_uid == os.getuid():  # an older, world-readable file
                os.chmod(self.path, 0o600)
            return
        except OSError as exc:
            raise FeedbackError(f"cannot create the feedback database {self.path}: {exc.strerror}") from None
        os.close(fd)

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
                # FULL in WAL mode: each commit is synced to disk before it returns, so an
                # acknowledged answer or rating survives a power cut as well as a killed process.
                conn.execute("PRAGMA synchronous=FULL")
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
    def transaction(self) -> Iterator[_SQLiteTx]:
        conn = self._conn()
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.DatabaseError as exc:
            raise self._unavailable(exc) from None
        try:
            yield _SQLiteTx(conn)
        except sqlite3.DatabaseError as exc:
            conn.execute("ROLLBACK")
            raise self._unavailable(exc) from None
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        try:
            conn.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            raise self._unavailable(exc) from None

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        try:
            return self._conn().execute(sql, tuple(params)).fetchall()
        except sqlite3.DatabaseError as exc:
            raise self._unavailable(exc) from None

    def stream(self, sql: str, params: Sequence[Any] = ()) -> Iterator[tuple]:
        try:
            yield from self._conn().execute(sql, tuple(params))
        except sqlite3.DatabaseError as exc:
            raise self._unavailable(exc) from None

    def _unavailable(self, exc: sqlite3.DatabaseError) -> StoreUnavailableError:
        return StoreUnavailableError(f"{self.path}: the feedback database failed ({exc})")

    def check(self) -> None:
        """``PRAGMA quick_check``: a damaged file is an error now, not lost answers later.

        Runs on a connection of its own: the serving connections' page caches could hide
        damage done to the file after they read it.
        """
        if self._closed:
            raise FeedbackError(f"{self.path}: the feedback store is closed")
        conn = None
        try:
            conn = sqlite3.connect(self.path, timeout=self.busy_timeout_s)
            problems = [r[0] for r in conn.execute("PRAGMA quick_check(5)").fetchall()]
        except sqlite3.DatabaseError as exc:
            problems = [str(exc)]
        finally:
            if conn is not None:
                conn.close()
        if problems != ["ok"]:
            raise FeedbackError(
                f"{self.path}: the feedback database is damaged (quick_check: {' '.join('; '.join(problems).split())[:300]}); "
                "move it aside to start a new log, or restore it from a backup"
            )

    def close(self) -> None:
        """Close every thread's connection (checkpointing the WAL); later use raises FeedbackError."""
        self._closed = True
        with self._conns_lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            conn.close()


# --- PostgreSQL ----------------------------------------------------------------------------


class _PostgresTx:
    def __init__(self, conn) -> None:
        self.conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        return self.conn.execute(_pg_sql(sql), tuple(params))


def _pg_sql(sql: str) -> str:
    # The store's SQL holds no literal ? or %; values always travel as parameters.
    return sql.replace("?", "%s")


class PostgresDatabase(Database):
    """A PostgreSQL database through a psycopg connection pool (``max_connections`` at most).

    Every write is one transaction, committed before it is acknowledged. The server is
    reached once at start-up, so a wrong URL or a server that is down is an error then.
    """

    backend = "postgresql"
    types = {"id": "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY", "real": "DOUBLE PRECISION"}

    def __init__(
        self, url: DatabaseURL, *, max_connections: int = 10, connect_timeout_s: int = 5, wait_timeout_s: float = 10.0
    ) -> None:
        import psycopg
        from psycopg_pool import ConnectionPool

        if max_connections < 1:
            raise ValueError(f"max_connections must be >= 1, got {max_connections}")
        self.url = url
        self.path = None
        self._psycopg = psycopg
        try:
            # One direct connection first: its error says what is wrong (refused, no such
            # database, bad password), where a pool would only time out.
            psycopg.connect(url.conninfo, connect_timeout=connect_timeout_s).close()
        except (psycopg.Error, ValueError) as exc:
            raise FeedbackError(f"{url}: cannot connect to PostgreSQL ({self._clean(exc)})") from None
        self.pool = ConnectionPool(
            url.conninfo, min_size=1, max_size=max_connections, timeout=wait_timeout_s, open=False,
            kwargs={"connect_timeout": connect_timeout_s}, name="feedback",
            # A pooled connection is checked before use, so one cut by a server restart is
            # replaced instead of failing the request that draws it.
            check=ConnectionPool.check_connection,
        )
        self.pool.open(wait=True, timeout=wait_timeout_s)

    def _clean(self, exc: BaseException) -> str:
        message = " ".join(str(exc).split()) or type(exc).__name__
        password = urllib.parse.urlsplit(self.url.conninfo).password
        if password:
            message = message.replace(password, "***").replace(urllib.parse.unquote(password), "***")
        return message.replace(self.url.conninfo, str(self.url))

    @contextmanager
    def transaction(self) -> Iterator[_PostgresTx]:
        from psycopg_pool import PoolTimeout

        if self.pool.closed:
            raise FeedbackError(f"{self.url}: the feedback store is closed")
        try:
            with self.pool.connection() as conn:  # commits when the block ends, rolls back on error
                yield _PostgresTx(conn)
        except (self._psycopg.OperationalError, self._psycopg.InterfaceError, PoolTimeout) as exc:
            raise StoreUnavailableError(f"{self.url}: the feedback database is unreachable ({self._clean(exc)})") from None
        except self._psycopg.errors.DatabaseError as exc:
            raise StoreUnavailableError(f"{self.url}: the feedback database failed ({self._clean(exc)})") from None

    def stream(self, sql: str, params: Sequence[Any] = ()) -> Iterator[tuple]:
        with self.transaction() as tx:
            # A server-side cursor: a large export streams instead of arriving in one piece.
            with tx.conn.cursor(name="feedback_stream") as cur:
                cur.execute(_pg_sql(sql), tuple(params))
                yield from cur

    def lock_schema(self, tx) -> None:
        tx.execute("SELECT pg_advisory_xact_lock(?)", (PG_MIGRATION_LOCK,))

    def check(self) -> None:
        self.query("SELECT 1")

    def close(self) -> None:
        self.pool.close()


def open_database(url: str | DatabaseURL, **kwargs) -> Database:
    """Open the database a URL names (SQLite: creating the file and its folder if needed).

    Raises:
        ConfigError: the URL is malformed.
        FeedbackError: the file cannot be created or opened, or the server cannot be reached.
    """
    parsed = parse_database_url(url) if isinstance(url, str) else url
    if parsed.backend == "sqlite":
        return SQLiteDatabase(parsed, **kwargs)
    return PostgresDatabase(parsed, **kwargs)
