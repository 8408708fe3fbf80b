"""``assistant serve``: the web app and JSON API over a corpus (``python app.py`` runs the same).

Flags and environment variables are read here, then passed down as arguments.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import re
import socket
import sys
import time
from pathlib import Path

from assistant.cli import common
from assistant.errors import ConfigError
from assistant.extras import require_extra
from assistant.settings import resolve_corpus_args

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
DEFAULT_DATA_DIR = ".data"
DEFAULT_RATE_LIMIT = "120/min"
MIN_PASSWORD_CHARS = 12  # for a server other machines can reach
WARM_UP_QUESTION = "How long does shipping take?"
RATE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(s|sec|second|m|min|minute|h|hour)\s*$", re.IGNORECASE)
PER_MINUTE = {"s": 60.0, "sec": 60.0, "second": 60.0, "m": 1.0, "min": 1.0, "minute": 1.0, "h": 1 / 60, "hour": 1 / 60}


def register(sub, add_corpus_args) -> None:
    p = sub.add_parser(
        "serve", help="run the web assistant (customer chat, agent drafter, insights) and the JSON API",
        description="Serve the customer chat, the agent reply drafter, the insights view and the JSON API. "
        "The index is built or refreshed on start.",
    )
    add_corpus_args(p)
    p.add_argument(
        "--host", default=DEFAULT_HOST,
        help="interface to listen on (default 127.0.0.1: this machine only). Any other address exposes the "
        "server and then needs a staff login (--user/--password)",
    )
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (default 7860; 0 picks a free one)")
    p.add_argument(
        "--data-dir", metavar="DIR",
        help="folder for the feedback database (env ASSISTANT_DATA_DIR; default .data/) and the server's own files",
    )
    p.add_argument(
        "--database-url", metavar="URL",
        help="the feedback log (env ASSISTANT_DATABASE_URL): sqlite:///PATH (default: <data dir>/feedback.sqlite3) "
        "or postgresql://user:password@host:5432/db, which several replicas can share (prefer the variable: "
        "flags show up in the process list)",
    )
    p.add_argument("--user", help="staff login user for the agent drafter and insights (env ASSISTANT_USER)")
    p.add_argument(
        "--password",
        help="staff login password (env ASSISTANT_PASSWORD; prefer the variable: flags show up in the process list); "
        f"at least {MIN_PASSWORD_CHARS} characters when --host is not a loopback address. Five failed logins from one "
        "address lock it out for 30 s, doubling with each further failure (up to 15 min)",
    )
    p.add_argument(
        "--rate-limit", metavar="N/min",
        help=f"requests each client address may send to the JSON API, e.g. 120/min, 5/s, 2000/h, or off "
        f"(env ASSISTANT_RATE_LIMIT; default {DEFAULT_RATE_LIMIT}); a client may spend a whole minute's "
        "allowance at once; over it: 429 with Retry-After",
    )
    p.add_argument(
        "--allowed-host", action="append", metavar="NAME", default=None,
        help="a host name the server answers to besides localhost, 127.0.0.1, ::1 and --host (repeatable; env "
        "ASSISTANT_ALLOWED_HOSTS, comma-separated; * for any), e.g. the name a reverse proxy passes on. Other Host "
        "headers get 400 (against DNS rebinding). Checked on a loopback --host always, elsewhere only when given",
    )
    p.set_defaults(func=cmd_serve)


def parse_rate_limit(text: str) -> float | None:
    """Requests per minute from ``N/s``, ``N/min`` or ``N/h`` (None for ``off``)."""
    if text.strip().lower() in ("off", "none", "0"):
        return None
    m = RATE_RE.match(text)
    if not m or float(m.group(1)) <= 0:
        raise ConfigError(f"--rate-limit must look like 120/min, 5/s, 2000/h or off, got {text!r}")
    return float(m.group(1)) * PER_MINUTE[m.group(2).lower()]


def resolve_database_url(url: str | None, data_dir: Path):
    """The feedback database to open: ``url`` checked (password redacted in any error), or the
    SQLite file in the data folder."""
    from assistant.server.database import DB_NAME, parse_database_url, sqlite_url

    return parse_database_url(url if url else sqlite_url(data_dir / DB_NAME))


def is_loopback(host: str) -> bool:
    """True when ``host`` is only reachable from this machine (127.0.0.0/8, ::1, localhost)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything, so treat it as exposed


def resolve_login(user: str | None, password: str | None, host: str) -> tuple[str, str] | None:
    """The staff login to enforce, or None; refuse an exposed host without one."""
    if bool(user) != bool(password):
        missing = "password" if user else "user"
        raise ConfigError(
            f"a staff login needs both a user and a password; the {missing} is missing "
            "(--user/--password or ASSISTANT_USER/ASSISTANT_PASSWORD)"
        )
    if not user and not is_loopback(host):
        raise ConfigError(
            f"refusing to listen on {host} without a staff login: other machines could reach the agent drafter "
            "and the insights. Set ASSISTANT_USER and ASSISTANT_PASSWORD (or --user/--password), "
            f"or listen on {DEFAULT_HOST}"
        )
    if user and not is_loopback(host) and len(password) < MIN_PASSWORD_CHARS:
        raise ConfigError(
            f"the staff password is too short for a server other machines can reach ({len(password)} characters; "
            f"at least {MIN_PASSWORD_CHARS}): set a longer ASSISTANT_PASSWORD, e.g. four random words"
        )
    return (user, password) if user else None


def resolve_allowed_hosts(host: str, extra: list[str] | None) -> list[str] | None:
    """The Host header names to answer to, or None for any.

    A loopback server answers only to the loopback names, ``host`` and ``extra`` (a browser
    page that re-points its own DNS name at 127.0.0.1 is refused). An exposed server is reached
    by names it cannot know, so it checks only when ``extra`` names them.
    """
    from assistant.server.api import LOOPBACK_HOSTS

    names = [h.strip() for h in extra or [] if h.strip()]
    bad = [h for h in names if "/" in h or " " in h]
    if bad:
        raise ConfigError(f"--allowed-host must be a host name such as shop.example.com, got {bad[0]!r}")
    if not names and not is_loopback(host):
        return None
    return [*LOOPBACK_HOSTS, host, *names]


def bind_socket(host: str, port: int) -> socket.socket:
    """A socket bound to host:port (not yet listening), so a busy port fails before the model loads."""
    if not 0 <= port <= 65535:
        raise ConfigError(f"--port must be between 0 and 65535, got {port}")
    try:
        family, kind, proto, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as exc:
        raise ConfigError(f"--host {host}: cannot resolve it ({exc.strerror})") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(addr)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.set_inheritable(True)
    return sock


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def cmd_serve(args: argparse.Namespace) -> int:
    require_extra("web", "the web app")  # before the imports below need fastapi and gradio
    from assistant.server.api import STAFF_PATH, create_app
    from assistant.server.feedback import FeedbackStore

    def say(msg: str) -> None:
        if not args.quiet:
            print(msg, file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    login = resolve_login(
        args.user or os.environ.get("ASSISTANT_USER") or None,
        args.password or os.environ.get("ASSISTANT_PASSWORD") or None,
        args.host,
    )
    rate_limit = parse_rate_limit(args.rate_limit or os.environ.get("ASSISTANT_RATE_LIMIT") or DEFAULT_RATE_LIMIT)
    allowed_hosts = resolve_allowed_hosts(
        args.host, args.allowed_host or os.environ.get("ASSISTANT_ALLOWED_HOSTS", "").split(",")
    )
    data_dir = Path(args.data_dir or os.environ.get("ASSISTANT_DATA_DIR") or DEFAULT_DATA_DIR)
    database = resolve_database_url(args.database_url or os.environ.get("ASSISTANT_DATABASE_URL") or None, data_dir)
    sock = bind_socket(args.host, args.port)
    try:
        store = FeedbackStore(database)  # before the model loads: a wrong URL or a down server fails fast
        # Gradio's own files (the CSV export it hands to the browser) go under the data folder,
        # not the system temp folder: the server writes nowhere but its index and data folders.
        os.environ.setdefault("GRADIO_TEMP_DIR", str((data_dir / "gradio").resolve()))
        try:
            corpus, index_dir, _ = resolve_corpus_args(args)
            say(f"index: building or refreshing the index of {', '.join(corpus)} in {index_dir} ...")
            assistant, stats, _ = common.open_assistant(args)
            if stats.rebuilt:
                say(f"index: built {stats.passages} passages ({stats.embedded} vectors embedded) in {stats.seconds:.1f}s ({stats.reason})")
            else:
                say(f"index: up to date ({stats.passages} passages), loaded in {stats.seconds:.1f}s")
            assistant.ask(WARM_UP_QUESTION)  # first real question then pays no lazy start-up cost
            app = create_app(
                assistant, store, auth=login, rate_limit_per_min=rate_limit, corpus=corpus, index_dir=index_dir, refresh_log=say,
                allowed_hosts=allowed_hosts,
            )
            url = _url(sock)

            def started() -> None:
                say(f"feedback: {store.url} (schema version {store.schema_version})")
                if assistant.verifier_missing:
                    say(f"verifier: none ({assistant.verifier_missing}); answers rely on the retriever alone")
                else:
                    say(f"verifier: {assistant.verifier_name}")
                say(
                    "rate limit: " + (f"{rate_limit:g} JSON API requests a minute per client" if rate_limit else "off")
                )
                say("hosts: " + (", ".join(allowed_hosts) if allowed_hosts else "any name (--allowed-host to restrict)"))
                if login:
                    say(f"login: the agent drafter and insights at {url.rstrip('/')}{STAFF_PATH}/ need the staff login")
                say(f"ready in {time.perf_counter() - t0:.1f}s: open {url} (JSON API: POST {url}api/ask, health: {url}healthz)")

            make_server(app, on_started=started).run(sockets=[sock])
        finally:
            store.close()
    finally:
        sock.close()
    return 0



def make_server(app, *, on_started=None):
    """A uvicorn server for ``app`` that calls ``on_started`` once it accepts connections.

    Run it with ``server.run(sockets=[sock])``; setting ``server.should_exit`` stops it.
    """
    import uvicorn

    class Server(uvicorn.Server):
        async def startup(self, sockets=None) -> None:
            await super().startup(sockets)
            if self.started and not self.should_exit and on_started is not None:
                on_started()

    return Server(uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=5))
