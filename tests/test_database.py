"""Choosing and opening the feedback database: --database-url / ASSISTANT_DATABASE_URL, clear
start-up errors (bad URL, unreachable server, wrong password, damaged file) that never show the
password, and a log that fails while serving: /healthz 503 and asks 503, never an unlogged 200."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.parse

import httpx
import pytest

from assistant.core.pipeline import Assistant
from assistant.errors import ConfigError, FeedbackError
from assistant.server.api import create_app
from assistant.server.database import DatabaseURL, parse_database_url, redact
from assistant.server.feedback import DB_NAME, FeedbackStore

from .app_process import child_env
from .conftest import ROOT
from .live_server import live_server
from .test_feedback import _filled_database


@pytest.mark.parametrize(
    "url, backend, path",
    [
        ("sqlite:///data/feedback.sqlite3", "sqlite", "data/feedback.sqlite3"),
        ("sqlite:////srv/log/feedback.sqlite3", "sqlite", "/srv/log/feedback.sqlite3"),
        ("SQLITE:///a%20b.sqlite3", "sqlite", "a b.sqlite3"),
        ("postgresql://u:pw@db.internal:5432/assistant", "postgresql", None),
        ("postgres://u@db.internal/assistant", "postgresql", None),
        ("postgresql:///assistant?host=/run/postgresql", "postgresql", None),
    ],
)
def test_database_urls(url, backend, path):
    parsed = parse_database_url(url)
    assert (parsed.backend, None if parsed.path is None else str(parsed.path)) == (backend, path)
    assert "pw" not in str(parsed) and "pw" not in repr(parsed)


@pytest.mark.parametrize(
    "url, message",
    [
        ("mysql://u:hunter2@h/db", r"^--database-url must be sqlite:///PATH or postgresql://.*got 'mysql://u:\*\*\*@h/db'$"),
        ("feedback.sqlite3", r"^--database-url must be sqlite:///PATH or postgresql://"),
        ("", r"^--database-url must be"),
        ("sqlite://data/x.sqlite3", r"a SQLite URL is sqlite:///PATH \(three slashes"),
        ("sqlite:///", r"a SQLite URL is sqlite:///PATH"),
        ("postgresql://u:hunter2@h:99999/db", r"^--database-url 'postgresql://u:\*\*\*@h:99999/db': Port out of range"),
        ("postgresql://u:hunter2@h:port/db", r"^--database-url 'postgresql://u:\*\*\*@h:port/db': Port could not be cast"),
        ("postgresql://u:hunter2@h:5432", r"name the database, e\.g\. postgresql://user:password@host:5432/assistant"),
    ],
)
def test_bad_database_urls_are_one_clear_error_without_the_password(url, message):
    with pytest.raises(ConfigError, match=message) as info:
        parse_database_url(url)
    assert "hunter2" not in str(info.value)


def test_redact():
    assert redact("postgresql://u:p%40ss@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert redact("postgresql://u@h/db") == "postgresql://u@h/db"
    assert redact("sqlite:////tmp/x") == "sqlite:////tmp/x"


def _with_password(url: str, password: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{parts.username}:{password}@{parts.hostname}:{parts.port}"))


def test_wrong_password_and_missing_database_are_clear_errors(pg_url):
    with pytest.raises(FeedbackError, match=r"cannot connect to PostgreSQL \(.*password authentication failed") as info:
        FeedbackStore(_with_password(pg_url, "not-the-password"))
    assert "not-the-password" not in str(info.value) and ":***@" in str(info.value)
    missing = urllib.parse.urlsplit(pg_url)._replace(path="/no_such_db").geturl()
    with pytest.raises(FeedbackError, match=r'database "no_such_db" does not exist'):
        FeedbackStore(missing)


def _serve(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "assistant", "serve", "--port", "0", *args], capture_output=True, text=True,
        env=child_env(**env), cwd=ROOT, timeout=120,
    )


def _one_line(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr  # one clear line, no traceback
    return lines[0]


@pytest.mark.slow
def test_serve_refuses_bad_databases_before_loading_anything(tmp_path, pg_url):
    secret = "s3cret-" + os.urandom(4).hex()
    line = _one_line(_serve("--database-url", f"mysql://u:{secret}@h/db"))
    assert line == "error: --database-url must be sqlite:///PATH or postgresql://user:password@host:port/database, got 'mysql://u:***@h/db'"
    # unreachable server, from the environment variable: no silent fall-back to SQLite
    line = _one_line(_serve("--data-dir", str(tmp_path / "data"), ASSISTANT_DATABASE_URL=f"postgresql://u:{secret}@127.0.0.1:1/db"))
    assert line.startswith("error: postgresql://u:***@127.0.0.1:1/db: cannot connect to PostgreSQL (connection failed:")
    assert not (tmp_path / "data" / DB_NAME).exists()
    line = _one_line(_serve("--database-url", _with_password(pg_url, secret)))
    assert "password authentication failed" in line and secret not in line
    # a damaged SQLite log (4 KiB of garbage in a real file) stops the start, before the model loads
    path = _filled_database(tmp_path / "damaged")
    with path.open("r+b") as f:
        f.seek(8 * 4096)
        f.write(os.urandom(4096))
    line = _one_line(_serve("--database-url", f"sqlite:///{path}"))
    assert line.startswith(f"error: {path}: the feedback database is damaged (quick_check: ")
    line = _one_line(_serve("--data-dir", str(path.parent)))  # the default URL in the data folder: the same check
    assert "the feedback database is damaged" in line


# --- a log that fails while serving ----------------------------------------------------------


@pytest.fixture
def tiny_assistant(tiny_corpus, tmp_path, fake_encoder):
    assistant, _ = Assistant.open([tiny_corpus], tmp_path / "index", encoder=fake_encoder)
    return assistant


ASK = {"question": "how many days do I have to return items for a refund"}


def test_a_dropped_postgresql_database_is_unhealthy_and_asks_are_not_acknowledged(tiny_assistant, pg_cluster, pg_url):
    import psycopg

    # A short wait for a pooled connection (the default is 10 s), so the dropped database is
    # reported quickly; the client waits longer than that.
    with FeedbackStore(pg_url, wait_timeout_s=2.0) as store, live_server(create_app(tiny_assistant, store, ui=False)) as url:
        with httpx.Client(base_url=url, timeout=30) as c:
            assert c.post("/api/ask", json=ASK).status_code == 200
            assert c.get("/healthz").status_code == 200
            name = urllib.parse.urlsplit(pg_url).path.lstrip("/")
            with psycopg.connect(pg_cluster.admin_url, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')  # the server's connections are cut
            r = c.post("/api/ask", json=ASK)
            assert r.status_code == 503, r.text  # never a 200 that was not logged
            assert r.json()["error"]["code"] == "feedback_unavailable" and int(r.headers["retry-after"]) >= 1
            assert "127.0.0.1" not in r.text  # the customer is not told where the database is
            health = c.get("/healthz")
            assert health.status_code == 503
            body = health.json()
            assert body["status"] == "feedback_error" and body["feedback"]["status"] == "error"
            assert ":***@" in body["feedback"]["database"]
            password = urllib.parse.urlsplit(pg_url).password
            assert password not in health.text


def test_a_sqlite_log_damaged_while_serving_makes_healthz_503(tiny_assistant, tmp_path):
    path = _filled_database(tmp_path / "data")
    with FeedbackStore(path, check_interval_s=0) as store, live_server(create_app(tiny_assistant, store, ui=False)) as url:
        with httpx.Client(base_url=url, timeout=30) as c:
            assert c.get("/healthz").status_code == 200
            with path.open("r+b") as f:
                f.seek(8 * 4096)
                f.write(os.urandom(4096))
            r = c.get("/healthz")
            assert r.status_code == 503 and r.json()["status"] == "feedback_error"
            assert "the feedback database is damaged" in r.json()["feedback"]["error"]


def test_a_store_accepts_a_parsed_url(tmp_path):
    url = parse_database_url(f"sqlite:///{tmp_path / 'x' / DB_NAME}")
    assert isinstance(url, DatabaseURL)
    with FeedbackStore(url) as s:
        assert s.path == tmp_path / "x" / DB_NAME and s.backend == "sqlite"


def test_connections_cut_by_the_server_are_replaced(pg_cluster, pg_url):
    """After a PostgreSQL restart (here: every connection of the store terminated), the next
    write gets a fresh connection instead of an error."""
    import psycopg

    from .test_feedback import answered

    with FeedbackStore(pg_url) as store:
        store.record("ask", answered("before"))
        name = urllib.parse.urlsplit(pg_url).path.lstrip("/")
        with psycopg.connect(pg_cluster.admin_url, autocommit=True) as admin:
            cut = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = %s", (name,)
            ).fetchone()[0]
        assert cut >= 1
        store.record("ask", answered("after"))
        assert store.totals().interactions == 2
