"""Security of the server: per-client rate limit (429), no file outside the configured folders
through any route, no uploads, credentials never logged, loopback by default.

Tested elsewhere: the body size limit (413, tests/test_api.py::test_oversize_body_is_413 and
the chunked variant; a 1 MB question in tests/test_bad_input.py), escaped rendering of question
and passage text (tests/test_browser.py::test_html_and_script_payloads_never_run), masking of
emails, phone and card numbers in stored questions (tests/test_feedback.py::test_mask_pii,
tests/test_api.py::test_stored_question_is_masked), the staff login (tests/test_api.py).
"""

from __future__ import annotations

import http.client
import logging
import secrets
import urllib.parse
from pathlib import Path

import httpx
import pytest

from assistant.errors import ConfigError
from assistant.server.feedback import DB_NAME, FeedbackStore
from assistant.core.pipeline import Assistant
from assistant.server.api import RateLimit, create_app
from assistant.cli.serve import DEFAULT_HOST, parse_rate_limit

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
        assert r.status_code == 429 and r.headers["retry-after"] == "10"  # 6 a minute: a token every 10 s
        assert r.json()["error"] == {
            "code": "rate_limited",
            "message": "too many requests from 127.0.0.1: the limit is 6 requests a minute (bursts of 3); retry in 10 s",
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
