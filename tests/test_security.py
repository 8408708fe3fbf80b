"""Security of the server: per-client rate limit (429), no file outside the configured folders
through any route, no uploads, credentials never logged, loopback by default.

Also the hardening of issue 18 (every route against a real server on loopback): a body limit
on the Gradio routes too, the rate limit on Gradio's ``api/`` route, a Host check against DNS
rebinding, no cross-origin reads of the staff app, a login throttle and SameSite=Lax cookie,
Gradio's bad calls answered 4xx, slow bodies timed out (408), corpus ids kept in their code span.

Tested elsewhere: the JSON API's body size limit (413, tests/test_api.py::test_oversize_body_is_413 and
the chunked variant; a 1 MB question in tests/test_bad_input.py), escaped rendering of question
and passage text (tests/test_browser.py::test_html_and_script_payloads_never_run), masking of
emails, phone and card numbers in stored questions (tests/test_feedback.py::test_mask_pii,
tests/test_api.py::test_stored_question_is_masked), the staff login (tests/test_api.py).
"""

from __future__ import annotations

import http.client
import json
import logging
import re
import secrets
import socket
import urllib.parse
from pathlib import Path

import httpx
import pytest

from assistant.cli.serve import (
    DEFAULT_HOST,
    parse_rate_limit,
    resolve_allowed_hosts,
    resolve_login,
)
from assistant.core.pipeline import Assistant
from assistant.errors import ConfigError
from assistant.server.api import LoginThrottle, RateLimit, create_app
from assistant.server.feedback import DB_NAME, FeedbackStore

from .live_server import live_server

STAFF = ("staff", "pw-" + secrets.token_hex(8))


# --- rate limit ----------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_spends_refills_and_forgets():
    clock = Clock()
    limiter = RateLimit(None, per_minute=60, burst=3, max_clients=2, clock=clock)  # 1 token a second
    assert [limiter.take("a") for _ in range(4)] == [0, 0, 0, pytest.approx(1.0)]
    clock.now += 0.5
    assert limiter.take("a") == pytest.approx(0.5)  # a refused request costs nothing
    clock.now += 0.5
    assert limiter.take("a") == 0 and limiter.take("a") == pytest.approx(1.0)
    assert limiter.take("b") == 0  # clients have their own buckets
    clock.now += 100
    assert [limiter.take("a") for _ in range(4)][-1] > 0  # refills to the burst, not beyond
    limiter.take("c")  # a third client: the least recently seen ("b") is forgotten
    assert list(limiter.buckets) == ["a", "c"]


@pytest.mark.parametrize(
    "text, per_minute", [("120/min", 120), ("2/s", 120), ("3000/h", 50), ("1.5/sec", 90), (" 10 / minute ", 10), ("off", None), ("0", None)]
)
def test_rate_limit_option(text, per_minute):
    assert parse_rate_limit(text) == per_minute


@pytest.mark.parametrize("text", ["fast", "0/min", "-1/min", "10/day", "", "1e3/s"])
def test_bad_rate_limit_option(text):
    with pytest.raises(ConfigError, match=r"--rate-limit must look like 120/min, 5/s, 2000/h or off, got "):
        parse_rate_limit(text)


@pytest.fixture
def tiny_app(tiny_corpus, tmp_path, fake_encoder):
    """An app over the tiny corpus with the fake encoder: (make_app, store, corpus, index, data)."""
    assistant, _ = Assistant.open([tiny_corpus], tmp_path / "index", encoder=fake_encoder)
    with FeedbackStore.open(tmp_path / "data") as store:
        yield (lambda **kw: create_app(assistant, store, **kw)), store, tiny_corpus, tmp_path / "index", tmp_path / "data"


def test_json_api_answers_429_per_client_with_retry_after(tiny_app):
    make_app, *_ = tiny_app
    with live_server(make_app(rate_limit_per_min=6, rate_burst=3)) as url, httpx.Client(base_url=url, timeout=30) as c:
        ask = {"question": "do you accept paypal"}
        assert [c.post("/api/ask", json=ask).status_code for _ in range(3)] == [200, 200, 200]
        r = c.post("/api/feedback", json={"interaction_id": 1, "helpful": True})  # every JSON endpoint counts
        # 6 a minute: a token every 10 s, less what has refilled since the burst (a slow machine
        # takes more than a second over three asks, so the exact wait is not pinned)
        assert r.status_code == 429 and 1 <= int(r.headers["retry-after"]) <= 10
        assert r.json()["error"] == {
            "code": "rate_limited",
            "message": "too many requests from 127.0.0.1: the limit is 6 requests a minute (bursts of 3); "
            f"retry in {r.headers['retry-after']} s",
        }
        # another client (as a reverse proxy on 127.0.0.1 reports it) has its own allowance
        other = c.post("/api/ask", json=ask, headers={"X-Forwarded-For": "203.0.113.7"})
        assert other.status_code == 200
        # the Gradio API is no way around it
        r = c.post("/gradio_api/call/ask", json={"data": ["do you accept paypal"]})
        assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limited"
        assert all(c.get("/healthz").status_code == 200 for _ in range(10))  # health checks are not limited
        assert c.get("/").status_code == 200  # nor the page itself


# --- files ---------------------------------------------------------------------------------

ROUTE_PREFIXES = [
    "/api/", "/healthz/", "/", "/staff/", "/gradio_api/file=", "/staff/gradio_api/file=", "/file=", "/gradio_api/file/",
    "/staff/gradio_api/file/", "/assets/", "/static/", "/gradio_api/static/", "/staff/assets/", "/gradio_api/proxy=",
    "/theme.css/", "/gradio_api/upload/", "/gradio_api/info/",
]


def _spellings(path: Path) -> list[str]:
    """Ways to name ``path`` from a URL: absolute, climbing with ../, encoded, doubly encoded, backslashes, NUL."""
    text = str(path)
    climb = "../" * 12 + text.lstrip("/")
    return [
        text, climb, urllib.parse.quote(text, safe=""), urllib.parse.quote(climb, safe=""),
        urllib.parse.quote(urllib.parse.quote(climb, safe=""), safe=""), climb.replace("/", "\\"),
        "..%2f" * 12 + urllib.parse.quote(text.lstrip("/"), safe=""), text + "%00.png", "/gradio/../" + climb,
    ]


def _raw_get(url: str, target: str) -> tuple[int, bytes]:
    """GET exactly ``target`` (http.client does not normalise ../ or decode % the way httpx does)."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.putrequest("GET", target, skip_accept_encoding=True)
        conn.endheaders()
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


@pytest.mark.slow
def test_no_route_serves_a_file_outside_the_configured_folders(tiny_app, tmp_path):
    make_app, store, corpus, index_dir, data_dir = tiny_app
    token = secrets.token_hex(16)
    secret = tmp_path / "outside" / "secret.txt"  # neither corpus, index nor data
    secret.parent.mkdir()
    secret.write_text(f"{token}\n")
    # Each target with a marker of its content. The corpus and the index hold the policies, which
    # the app shows as answers on purpose, but never hands out as files.
    targets = {
        secret: token.encode(), Path("/etc/passwd"): b"root:x:0:", Path("/proc/self/environ"): b"PATH=",
        data_dir / DB_NAME: b"SQLite format 3", corpus / "tiny.txt": b"All orders ship within 2 working days",
        index_dir / (index_dir / "CURRENT").read_text() / "manifest.json": b"corpus_fingerprint",
    }
    for target, marker in targets.items():
        assert marker in target.read_bytes(), target  # the files are there and the markers would show a leak
    markers = list(targets.values())
    leaks, errors = [], []
    with live_server(make_app(auth=STAFF)) as url:
        for prefix in ROUTE_PREFIXES:
            for target in targets:
                for spelling in _spellings(target):
                    status, body = _raw_get(url, prefix + spelling)
                    if status >= 500:
                        errors.append((prefix + spelling, status))
                    if any(m in body for m in markers):
                        leaks.append((prefix + spelling, status))
        # while the app does serve its own pages
        assert _raw_get(url, "/")[0] == 200 and _raw_get(url, "/healthz")[0] == 200
    assert leaks == [] and errors == []


def test_uploads_and_remote_fetches_are_refused_before_gradio_sees_them(tiny_app):
    make_app, *_ = tiny_app
    with live_server(make_app(auth=STAFF)) as url, httpx.Client(base_url=url, timeout=30) as c:
        for path in ["/gradio_api/upload", "/staff/gradio_api/upload", "/gradio_api/upload_progress"]:
            r = c.post(path, files={"files": ("x.txt", b"payload" * 1000)}, auth=STAFF)
            assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", (path, r.text)
            assert "takes no uploads" in r.json()["error"]["message"]
        # Gradio would fetch these from the internet (or proxy to another app) on the server's behalf
        for path in ["/gradio_api/file=https://example.com/x.png", "/gradio_api/file/http://example.com/",
                     "/staff/gradio_api/file=HTTP://example.com/", "/gradio_api/proxy=https://x.hf.space/"]:
            r = c.get(path)
            assert r.status_code == 404 and "fetches no remote files" in r.json()["error"]["message"], (path, r.text)


# --- credentials and logs ------------------------------------------------------------------


@pytest.mark.slow
def test_credentials_are_never_logged_nor_echoed(tiny_app, caplog, capfd, monkeypatch):
    make_app, store, *_ = tiny_app
    caplog.set_level(logging.DEBUG)
    bodies = []
    with live_server(make_app(auth=STAFF)) as url, httpx.Client(base_url=url, timeout=30) as c:
        bodies.append(c.get("/api/insights", auth=(STAFF[0], STAFF[1] + "x")).text)  # a near miss
        bodies.append(c.get("/api/insights", auth=(STAFF[1], STAFF[1])).text)  # the password as user name
        bodies.append(c.post("/api/draft", json={"question": "do you accept paypal"}, auth=STAFF).text)
        bodies.append(c.post("/staff/login", data={"username": STAFF[0], "password": STAFF[1] + "x"}).text)
        bodies.append(c.post("/staff/login", data={"username": STAFF[0], "password": STAFF[1]}).text)

        def boom():
            raise RuntimeError("database on fire")

        monkeypatch.setattr(store, "totals", boom)  # an unexpected error while authenticated
        r = c.get("/api/insights", auth=STAFF)
        assert r.status_code == 500 and r.json()["error"]["code"] == "internal_error"
        bodies.append(r.text)
    out, err = capfd.readouterr()
    logged = caplog.text + out + err
    assert "database on fire" in logged  # the error itself is logged...
    for secret in (STAFF[1], STAFF[1] + "x"):
        assert secret not in logged and all(secret not in b for b in bodies)  # ...the password never is


def test_the_server_listens_on_loopback_unless_told_otherwise():
    from assistant.cli.main import build_parser

    assert DEFAULT_HOST == "127.0.0.1" and build_parser().parse_args(["serve"]).host == "127.0.0.1"


# --- Markdown breakout ---------------------------------------------------------------------

BREAKOUT_IDS = [
    "faq` [click](https://evil.example) `x",  # closes a one-backtick span, then a live link
    "faq`` [click](https://evil.example) ``x",  # a longer run
    "`[click](https://evil.example)`",  # backticks at both ends
    "faq:<b>bold</b>&amp;",  # HTML and an entity inside the span show as typed
]


@pytest.mark.parametrize("passage_id", BREAKOUT_IDS)
def test_a_corpus_id_cannot_escape_the_sources_code_span(passage_id):
    import html

    from markdown_it import MarkdownIt

    from assistant.schema import Answer, Citation
    from assistant.server.web import sources_markdown

    title = "Returns `[click](https://evil.example)` ``x`` <i>t</i>"
    citation = Citation(id=passage_id, doc_id="faq", title=title, text="Returns are free.", score=1.0)
    answer = Answer(question="q", answered=True, answer="Returns are free. [1]", confidence=1.0, citations=[citation])
    rendered = MarkdownIt("commonmark").render(sources_markdown(answer))
    assert "<a " not in rendered and "<b>" not in rendered and "<i>" not in rendered
    assert f"<code>{html.escape(passage_id, quote=False)}</code>" in rendered  # the whole id, shown as typed
    assert html.escape(title, quote=False) in rendered  # the title too, as text


# --- issue 18: every route bounded, the Gradio API as strict as the JSON one -----------------

UI_LIMIT = 32 * 1024
OVER = UI_LIMIT + 1024
GRADIO_POSTS = ["call/ask", "run/ask", "api/ask", "queue/join", "call/v2/ask", "run/predict", "cancel", "reset"]
STAFF_POSTS = ["call/draft", "run/draft", "api/draft", "queue/join"]
EVERY_POST = (
    ["/api/ask", "/api/draft", "/api/feedback", "/staff/login", "/login"]
    + [f"/gradio_api/{p}" for p in GRADIO_POSTS]
    + [f"/staff/gradio_api/{p}" for p in STAFF_POSTS]
)


def _chunks(n: int):
    yield b'{"data": ["'
    for _ in range(n // 1024):
        yield b"a" * 1024
    yield b'"], "fn_index": 0, "session_hash": "abc"}'


def test_every_route_refuses_a_body_over_its_limit(tiny_app):
    # Gradio's routes had no limit: 20 MB bodies to call/ask were read and held (RSS 0.93 -> 2.96 GB).
    make_app, *_ = tiny_app
    app = make_app(auth=STAFF, max_body_bytes=UI_LIMIT, max_ui_body_bytes=UI_LIMIT)
    with live_server(app) as url, httpx.Client(base_url=url, timeout=60) as c:
        for path in EVERY_POST:
            big = json.dumps({"data": ["a" * OVER], "fn_index": 0, "session_hash": "abc", "question": "x"}).encode()
            # the login form is read only when sent as a form
            kind = "application/x-www-form-urlencoded" if path.endswith("login") else "application/json"
            declared = c.post(path, content=big, headers={"Content-Type": kind})
            chunked = c.post(path, content=_chunks(OVER), headers={"Content-Type": kind})
            for r in (declared, chunked):
                assert r.status_code == 413, (path, r.status_code, r.text[:200])
                assert r.json()["error"]["code"] == "payload_too_large"
        # the UI's own calls stay well inside it
        r = c.post("/gradio_api/run/ask", json={"data": ["do you accept paypal"]})
        assert r.status_code == 200 and r.json()["data"][0]["question"] == "do you accept paypal"


def test_the_rate_limit_covers_every_gradio_route(tiny_app):
    # /gradio_api/api/{name} was missed: 150 asks there right after a 429 all succeeded.
    make_app, *_ = tiny_app
    with live_server(make_app(auth=STAFF, rate_limit_per_min=6, rate_burst=2)) as url, httpx.Client(base_url=url, timeout=30) as c:
        assert [c.post("/api/ask", json={"question": "do you accept paypal"}).status_code for _ in range(2)] == [200, 200]
        for path in ["/gradio_api/api/ask", "/gradio_api/run/ask", "/gradio_api/call/ask", "/gradio_api/queue/join",
                     "/gradio_api/api/ask/", "/staff/gradio_api/api/draft", "/staff/gradio_api/run/draft"]:
            r = c.post(path, json={"data": ["do you accept paypal"]}, auth=STAFF)
            assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limited", (path, r.text)


BAD_GRADIO_CALLS = [
    ("/gradio_api/call/nope", {"data": ["x"]}, 404, "not_found", r"no Gradio API endpoint 'nope'; this app has: ask"),
    ("/gradio_api/run/nope", {"data": ["x"]}, 404, "not_found", r"no Gradio API endpoint 'nope'"),
    ("/gradio_api/api/nope", {"data": ["x"]}, 404, "not_found", r"no Gradio API endpoint 'nope'"),
    ("/gradio_api/call/v2/nope", {"question": "x"}, 404, "not_found", r"no Gradio API endpoint 'nope'"),
    ("/gradio_api/run/predict", {"data": ["x"], "fn_index": 9999}, 404, "not_found", r"no Gradio function with fn_index 9999"),
    ("/gradio_api/api/ask", {"data": ["x"], "fn_index": "9999"}, 404, "not_found", r"fn_index 9999"),
    ("/gradio_api/queue/join", {"data": ["x"], "fn_index": 9999, "session_hash": "s1"}, 404, "not_found", r"fn_index 9999"),
    ("/staff/gradio_api/run/ask", {"data": ["x"]}, 404, "not_found", r"this app has: draft"),
    ("/gradio_api/run/ask", {"data": ["why " * 750]}, 422, "invalid_question", r"question is too long \(2999 characters"),
    ("/gradio_api/api/ask", {"data": ["why " * 750]}, 422, "invalid_question", r"question is too long"),
    ("/staff/gradio_api/api/draft", {"data": ["why " * 750]}, 422, "invalid_question", r"question is too long"),
    ("/gradio_api/run/ask", {"data": ["  "]}, 422, "invalid_question", r"the question is empty"),
    ("/gradio_api/run/ask", {"data": [None]}, 422, "invalid_question", r"question must be text, got NoneType"),
    ("/gradio_api/api/ask", {"data": [1, 2, 3]}, 422, "invalid_request", r"'data' must be a list of 1 to 2 values, the question first"),
    ("/staff/gradio_api/run/draft", {"data": ["hi", 5]}, 422, "invalid_request", r"after the question must be text or null"),
]


@pytest.mark.parametrize("path, body, status, code, message", BAD_GRADIO_CALLS, ids=[f"{c[0]} {c[2]} {c[4][:30]}" for c in BAD_GRADIO_CALLS])
def test_gradio_answers_bad_calls_with_a_4xx_json_error(tiny_app, path, body, status, code, message):
    # Each of these was a 500 (an unknown name or fn_index: a traceback and a reset connection).
    make_app, *_ = tiny_app
    with live_server(make_app(auth=STAFF)) as url, httpx.Client(base_url=url, timeout=60, auth=STAFF) as c:
        c.post("/staff/login", data={"username": STAFF[0], "password": STAFF[1]})  # the staff app's session cookie
        r = c.post(path, json=body)
        assert r.status_code == status, r.text[:300]
        error = r.json()["error"]
        assert error["code"] == code and re.search(message, error["message"]), error
        # and the server goes on answering good calls
        assert c.post("/gradio_api/run/ask", json={"data": ["do you accept paypal"]}).status_code == 200


def _host(url: str, host: str, path: str = "/api/export.csv") -> httpx.Response:
    return httpx.get(url.rstrip("/") + path, headers={"Host": host}, timeout=30)


def test_a_loopback_server_answers_only_to_its_own_names(tiny_app):
    # DNS rebinding: a page on rebind.attacker.example, re-pointed at 127.0.0.1, read the whole log.
    make_app, *_ = tiny_app
    with live_server(make_app()) as url:
        port = urllib.parse.urlsplit(url).port
        for host in ["rebind.attacker.example", f"rebind.attacker.example:{port}", "127.0.0.1.attacker.example",
                     "localhost.attacker.example", "", "[::1", "evil:port"]:
            r = _host(url, host)
            assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_host", (host, r.text)
            assert "feedback.csv" not in r.headers.get("content-disposition", "")
        for path in ["/", "/healthz", "/gradio_api/info"]:
            assert _host(url, "rebind.attacker.example", path).status_code == 400
        for host in [f"127.0.0.1:{port}", f"localhost:{port}", "LOCALHOST", f"[::1]:{port}", "localhost."]:
            assert _host(url, host).status_code == 200, host
    with live_server(make_app(allowed_hosts=["127.0.0.1", "shop.example", "*.shop.example"])) as url:
        assert _host(url, "shop.example").status_code == 200  # a reverse proxy's name, allowed
        assert _host(url, "eu.shop.example").status_code == 200
        assert _host(url, "localhost").status_code == 400
        assert _host(url, "evilshop.example").status_code == 400


def test_allowed_hosts_from_the_command_line():
    from assistant.cli.main import build_parser

    args = build_parser().parse_args(["serve", "--allowed-host", "shop.example", "--allowed-host", "*.shop.example"])
    assert resolve_allowed_hosts(args.host, args.allowed_host) == [
        "localhost", "127.0.0.1", "::1", "127.0.0.1", "shop.example", "*.shop.example",
    ]
    assert resolve_allowed_hosts("127.0.0.1", None) == ["localhost", "127.0.0.1", "::1", "127.0.0.1"]
    assert resolve_allowed_hosts("0.0.0.0", None) is None  # exposed: reached by names it cannot know
    assert resolve_allowed_hosts("0.0.0.0", ["shop.example"])[-1] == "shop.example"
    with pytest.raises(ConfigError, match=r"--allowed-host must be a host name .*got 'http://shop.example/'"):
        resolve_allowed_hosts("127.0.0.1", ["http://shop.example/"])


def test_the_staff_app_allows_no_cross_origin_reads_and_its_cookie_stays_on_site(tiny_app):
    # Gradio reflected any Origin with credentials for a public host name, and set SameSite=None.
    make_app, *_ = tiny_app
    evil = {"Origin": "https://evil.example", "Host": "shop.example"}
    with live_server(make_app(auth=STAFF, allowed_hosts=None)) as url, httpx.Client(base_url=url, timeout=30) as c:
        for path in ["/staff/gradio_api/queue/join", "/staff/login", "/gradio_api/queue/join", "/api/draft"]:
            pre = c.options(path, headers={**evil, "Access-Control-Request-Method": "POST"})
            assert "access-control-allow-origin" not in pre.headers, (path, dict(pre.headers))
            assert pre.headers.get("access-control-allow-credentials") != "true"
        r = c.post("/staff/login", data={"username": STAFF[0], "password": STAFF[1]}, headers=evil)
        assert r.status_code == 200 and "access-control-allow-origin" not in r.headers
        cookies = r.headers.get_list("set-cookie")
        assert cookies and all(re.search(r"SameSite=lax", v, re.IGNORECASE) for v in cookies), cookies
        r = c.get("/staff/config", headers=evil)  # logged in: the cookie works, but evil.example may not read it
        assert r.status_code == 200 and "access-control-allow-origin" not in r.headers


def test_login_throttle_locks_out_and_doubles():
    clock = Clock()
    t = LoginThrottle(free_failures=3, lock_s=10, max_lock_s=35, clock=clock)
    for _ in range(2):
        t.failed("a")
    assert t.wait("a") == 0  # two free failures
    t.failed("a")
    assert t.wait("a") == 10 and t.wait("b") == 0  # the third locks "a" only
    clock.now += 10
    t.failed("a")
    assert t.wait("a") == 20  # doubling...
    clock.now += 20
    t.failed("a")
    assert t.wait("a") == 35  # ...up to the cap
    t.succeeded("a")
    assert t.wait("a") == 0 and "a" not in t.clients


def test_failed_logins_lock_the_client_out_even_with_the_right_password(tiny_app):
    # 300 wrong passwords in 0.3 s were all answered, and then the right one worked.
    make_app, *_ = tiny_app
    throttle = LoginThrottle(free_failures=3, lock_s=600)  # long enough that no slow machine outlasts it
    with live_server(make_app(auth=STAFF, login_throttle=throttle)) as url, httpx.Client(base_url=url, timeout=30) as c:
        wrong = {"username": STAFF[0], "password": "guess"}
        assert [c.post("/staff/login", data=wrong).status_code for _ in range(3)] == [400, 400, 400]
        for _ in range(5):
            r = c.post("/staff/login", data={"username": STAFF[0], "password": STAFF[1]})
            assert r.status_code == 429 and r.json()["error"]["code"] == "login_locked", r.text
            assert 1 <= int(r.headers["retry-after"]) <= 600 and not r.headers.get_list("set-cookie")
        # HTTP Basic on the staff JSON endpoints shares the count and the lock
        r = c.get("/api/insights", auth=STAFF)
        assert r.status_code == 429 and r.json()["error"]["code"] == "login_locked"
        # another client is not locked out; its failures over HTTP Basic count the same way
        other = {"X-Forwarded-For": "203.0.113.9"}
        assert c.get("/api/insights", auth=STAFF, headers=other).status_code == 200
        assert [c.get("/api/insights", auth=("staff", "guess"), headers=other).status_code for _ in range(3)] == [401] * 3
        assert c.get("/api/insights", auth=STAFF, headers=other).status_code == 429
        assert c.get("/api/insights", headers={"X-Forwarded-For": "203.0.113.10"}).status_code == 401  # no guess: no count
        ok = c.post("/staff/login", data={"username": STAFF[0], "password": STAFF[1]}, headers={"X-Forwarded-For": "203.0.113.11"})
        assert ok.status_code == 200


@pytest.mark.parametrize(
    "user, password, host, message",
    [
        ("staff", "qzx", "0.0.0.0", r"the staff password is too short .* \(3 characters; at least 12\)"),
        ("staff", "elevenchars", "shop.example", r"too short .* \(11 characters; at least 12\)"),
    ],
)
def test_an_exposed_server_refuses_a_weak_password(user, password, host, message):
    with pytest.raises(ConfigError, match=message) as info:
        resolve_login(user, password, host)
    assert password not in str(info.value)  # never echoed


def test_a_long_enough_password_or_a_loopback_server_is_accepted():
    assert resolve_login("staff", "twelve-chars", "0.0.0.0") == ("staff", "twelve-chars")
    assert resolve_login("staff", "a", "127.0.0.1") == ("staff", "a")  # only this machine can try


def _slow_body(url: str, path: str, declared: int, sent: bytes) -> bytes:
    """POST ``path`` declaring ``declared`` bytes of body, send only ``sent``, return what comes back."""
    parts = urllib.parse.urlsplit(url)
    kind = "application/x-www-form-urlencoded" if path.endswith("login") else "application/json"
    with socket.create_connection((parts.hostname, parts.port), timeout=60) as s:
        s.sendall(
            f"POST {path} HTTP/1.1\r\nHost: {parts.hostname}:{parts.port}\r\nContent-Type: {kind}\r\n"
            f"Content-Length: {declared}\r\n\r\n".encode() + sent
        )
        out = b""
        while chunk := s.recv(65536):  # the server must answer and close; the 60 s timeout means it hung
            out += chunk
        return out


@pytest.mark.parametrize("path", ["/api/ask", "/gradio_api/run/ask", "/gradio_api/queue/join", "/staff/login"])
def test_a_body_that_stops_arriving_gets_408_and_the_connection_closed(tiny_app, path):
    # Content-Length: 100 with 11 bytes sent was held open (no response after 75 s).
    make_app, *_ = tiny_app
    with live_server(make_app(auth=STAFF, body_timeout_s=1)) as url:
        out = _slow_body(url, path, 100, b'{"question"')
        head, _, body = out.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408"), out[:300]
        assert json.loads(body)["error"] == {
            "code": "request_timeout", "message": "the request body did not arrive within 1 s",
        }
        with httpx.Client(base_url=url, timeout=30) as c:  # the server still answers whole requests
            assert c.post("/api/ask", json={"question": "do you accept paypal"}).status_code == 200
