"""The JSON API and Gradio's named endpoints against the real server (real model) on loopback,
plus `assistant serve` / `python app.py` as a newcomer runs them."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from assistant.schema import Answer, Draft
from assistant.server.api import LoginThrottle, create_app
from assistant.server.feedback import FeedbackStore

from .app_process import Lines, index_dir_with_model
from .conftest import BACKENDS, ROOT, new_database_url
from .live_server import live_server

pytestmark = pytest.mark.slow

# The API object is Answer.to_dict() (Draft.to_dict() for drafts) plus the interaction id and
# its rating token; the schema may grow fields, so the expected keys come from it rather than
# from a copy here.
_probe = Answer(question="q", answered=False, answer="a", confidence=0.0)
ANSWER_KEYS = set(_probe.to_dict()) | {"interaction_id", "rating_token"}
DRAFT_KEYS = set(Draft(answer=_probe, text="t", escalate=True).to_dict()) | {"interaction_id", "rating_token"}
STAFF = ("staff", "correct horse battery staple")
BODY_LIMIT = 16 * 1024


@pytest.fixture(scope="module", params=BACKENDS)
def store(request, tmp_path_factory):
    """The log behind the API: every test using it runs once on SQLite, once on PostgreSQL."""
    with FeedbackStore(new_database_url(request, request.param, tmp_path_factory.mktemp("api-data"))) as s:
        yield s


@pytest.fixture(scope="module")
def url(seed_assistant, store):
    with live_server(create_app(seed_assistant, store, max_body_bytes=BODY_LIMIT)) as base:
        yield base


@pytest.fixture(scope="module")
def client(url):
    with httpx.Client(base_url=url, timeout=60) as c:
        yield c


@pytest.fixture(scope="module")
def locked_app(seed_assistant, tmp_path_factory):
    with FeedbackStore.open(tmp_path_factory.mktemp("locked-data")) as s:
        # These tests try wrong logins on purpose; the lock-out is tested in tests/test_security.py.
        yield create_app(seed_assistant, s, auth=STAFF, login_throttle=LoginThrottle(free_failures=1000))


@pytest.fixture(scope="module")
def locked_url(locked_app):
    with live_server(locked_app) as base:
        yield base


def without_timing(d: dict) -> dict:
    return {k: v for k, v in d.items() if k not in ("latency_ms", "interaction_id", "rating_token")}


# --- the JSON endpoints --------------------------------------------------------------------


def test_the_ui_queues_look_for_work_every_20_ms_not_every_ms(locked_app):
    # Gradio's idle queue polls on the JSON API's event loop: every 1 ms, an idle server used
    # 9.3% of a core (scripts/idle_cpu.py); the chat itself is tested in a browser in test_browser.py
    from assistant.server.api import STAFF_PATH, UI_PROGRESS_POLL_S, UI_QUEUE_POLL_S

    blocks = locked_app.state.gradio_blocks  # with a login: two UIs (the chat, the staff views), two queues
    assert set(blocks) == {"", STAFF_PATH}
    for b in blocks.values():
        assert (b._queue.sleep_when_free, b._queue.progress_update_sleep_when_free) == (0.02, 0.1)
    assert (UI_QUEUE_POLL_S, UI_PROGRESS_POLL_S) == (0.02, 0.1)


def test_healthz_reports_the_index(client, seed_assistant, store):
    r = client.get("/healthz")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok"
    assert body["index"]["passages"] == len(seed_assistant.index.passages)
    assert body["index"]["model"] == seed_assistant.index.manifest["model"]
    assert body["index"]["dimension"] == 384
    assert body["index"]["verifier"] == "all-mpnet-base-v2"  # the shipped default re-reads the candidates
    feedback = body["feedback"]
    assert set(feedback) == {"backend", "database", "schema_version", "status", "interactions", "ratings"}
    assert (feedback["backend"], feedback["status"], feedback["schema_version"]) == (store.backend, "ok", 3)
    assert feedback["interactions"] == store.totals().interactions
    if store.backend == "postgresql":
        assert ":***@127.0.0.1:" in feedback["database"]  # the password is never shown
        assert store.db.url.conninfo.split(":")[2].split("@")[0] not in r.text
    assert body["index"]["refusal"] == seed_assistant.refusal.source  # "default", "self-calibrated (...)" or a calibration


def test_ask_returns_the_cli_json_object(client, seed_assistant, store):
    r = client.post("/api/ask", json={"question": "Can I cancel my order?"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    body = r.json()
    assert set(body) == ANSWER_KEYS
    assert body["answered"] is True
    assert "coco-jewelry-faq:order-payment-1" in [c["id"] for c in body["citations"]]
    # the same object as `assistant ask --json` for that question
    assert without_timing(body) == without_timing(seed_assistant.ask("Can I cancel my order?").to_dict())
    logged = store.get(body["interaction_id"])
    assert (logged.kind, logged.channel, logged.answered) == ("ask", "api", True)
    assert logged.cited_ids == [c["id"] for c in body["citations"]]


def test_refusal_carries_the_support_contact(client):
    body = client.post("/api/ask", json={"question": "What's the weather in London tomorrow?"}).json()
    assert body["answered"] is False and body["citations"] == []
    assert body["support_contact"]["text"] == "support@coco-jewelry.com"
    assert "support@coco-jewelry.com" in body["answer"]


def test_stored_question_is_masked(client, store):
    body = client.post("/api/ask", json={"question": "I'm jo@example.com, card 4111 1111 1111 1111: can I cancel?"}).json()
    assert body["question"].startswith("I'm jo@example.com")  # the answer echoes what was asked...
    assert store.get(body["interaction_id"]).question == "I'm [email], card [card]: can I cancel?"  # ...the log does not


def test_a_follow_up_is_answered_in_its_conversation(client, store):
    body = client.post("/api/ask", json={"question": "what about Asia?", "history": ["How long does delivery to the UK take?"]}).json()
    assert set(body) == ANSWER_KEYS and body["answered"] is True and "3 to 10 working days" in body["answer"]
    assert (body["question"], body["resolved_question"]) == ("what about Asia?", "How long does delivery to Asia take?")
    logged = store.get(body["interaction_id"])
    assert (logged.question, logged.resolved_question) == ("what about Asia?", "How long does delivery to Asia take?")
    draft = client.post("/api/draft", json={"question": "and if it was already shipped?", "history": ["Can I cancel my order?"]}).json()
    assert "cannot cancel the order if the product has already been shipped" in draft["draft"]


def test_draft_adds_the_reply_text(client, store):
    r = client.post(
        "/api/draft", json={"question": "my ring arrived damaged", "customer_name": "Dana", "agent_name": "Sam"}
    )
    assert r.status_code == 200
    body = r.json()
    assert set(body) == DRAFT_KEYS
    assert body["draft"].startswith("Hi Dana,") and "Sam" in body["draft"]
    assert body["escalate"] is (not body["answered"])
    assert store.get(body["interaction_id"]).kind == "draft"


def test_feedback_is_stored(client, store):
    answer = client.post("/api/ask", json={"question": "How long does shipping take?"}).json()
    iid, token = answer["interaction_id"], answer["rating_token"]
    r = client.post("/api/feedback", json={"interaction_id": iid, "rating_token": token, "helpful": False})
    assert r.status_code == 200 and r.json() == {"interaction_id": iid, "helpful": False}
    assert store.get(iid).helpful is False
    draft = client.post("/api/draft", json={"question": "Can I cancel?"}).json()
    body = {"interaction_id": draft["interaction_id"], "rating_token": draft["rating_token"], "helpful": True}
    assert client.post("/api/feedback", json=body).status_code == 200
    assert store.get(draft["interaction_id"]).helpful is True


def test_only_the_requester_can_rate_an_answer(client, store):
    """Ids are sequential, so a rating needs the token that came with the answer; a wrong token
    and an id that does not exist get the same 403, so ids cannot be probed."""
    mine = client.post("/api/ask", json={"question": "Do you take PayPal?"}).json()
    theirs = client.post("/api/ask", json={"question": "Can I cancel my order?"}).json()
    assert mine["rating_token"] != theirs["rating_token"] and len(mine["rating_token"]) >= 32
    attempts = {
        "their token on my answer": (mine["interaction_id"], theirs["rating_token"]),
        "a made-up token": (mine["interaction_id"], "x" * 32),
        "an id that does not exist": (theirs["interaction_id"] + 10_000, mine["rating_token"]),
    }
    for case, (iid, token) in attempts.items():
        r = client.post("/api/feedback", json={"interaction_id": iid, "rating_token": token, "helpful": False})
        assert r.status_code == 403, (case, r.text)
        assert r.json()["error"] == {
            "code": "forbidden",
            "message": f"the rating_token does not match interaction id {iid}: "
            "send the interaction_id and rating_token returned with the answer",
        }
    r = client.post("/api/feedback", json={"interaction_id": mine["interaction_id"], "helpful": False})
    assert r.status_code == 422 and r.json()["error"]["message"] == "field 'rating_token' is required"
    assert store.get(mine["interaction_id"]).helpful is None and store.get(theirs["interaction_id"]).helpful is None


def test_insights_and_csv_export(client, store):
    client.post("/api/ask", json={"question": "Do you sell garden furniture?"})
    insights = client.get("/api/insights", params={"limit": 5}).json()
    assert insights["totals"]["interactions"] == store.totals().interactions
    assert "Do you sell garden furniture?" in [r["question"] for r in insights["top_refused"]]
    assert insights["answer_rate"][-1]["total"] >= 1
    r = client.get("/api/export.csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert r.text.splitlines()[0].startswith("id,created_at,kind,channel,question")
    assert len(r.text.strip().splitlines()) == store.totals().interactions + 1


@pytest.mark.parametrize(
    "path, body, status, code, message",
    [
        ("/api/ask", b'{"question": "unterminated', 400, "invalid_json", "not valid JSON"),
        ("/api/ask", b"question=hello", 400, "invalid_json", "not valid JSON"),
        ("/api/ask", b"", 422, "invalid_request", "request body is empty"),
        ("/api/ask", b"{}", 422, "invalid_request", "field 'question' is required"),
        ("/api/ask", b'{"qustion": "typo"}', 422, "invalid_request", "field 'question' is required"),
        ("/api/ask", b'{"question": ""}', 422, "invalid_question", "the question is empty"),
        ("/api/ask", b'{"question": "  \\n\\t "}', 422, "invalid_question", "the question is empty"),
        ("/api/ask", b'{"question": "\\u0000\\u0001"}', 422, "invalid_question", "the question is empty"),
        ("/api/ask", b'{"question": 42}', 422, "invalid_request", "field 'question': Input should be a valid string"),
        ("/api/ask", b'{"question": null}', 422, "invalid_request", "field 'question'"),
        ("/api/ask", b'{"question": ["a"]}', 422, "invalid_request", "field 'question'"),
        ("/api/ask", b'["Can I cancel?"]', 422, "invalid_request", "must be a JSON object"),
        ("/api/ask", b'"Can I cancel?"', 422, "invalid_request", "must be a JSON object"),
        ("/api/ask", json.dumps({"question": "why " * 800}).encode(), 422, "invalid_question", "too long"),
        ("/api/draft", b'{"question": "hi", "customer_name": 5}', 422, "invalid_request", "field 'customer_name'"),
        ("/api/ask", b'{"question": "and Asia?", "history": "UK?"}', 422, "invalid_request", "field 'history': Input should be a valid list"),
        ("/api/ask", b'{"question": "and Asia?", "history": [1]}', 422, "invalid_request", "field 'history.0': Input should be a valid string"),
        ("/api/ask", json.dumps({"question": "q?", "history": ["a?"] * 21}).encode(), 422, "invalid_request", "field 'history': List should have at most 20 items"),
        ("/api/ask", b'{"question": "and Asia?", "history": [""]}', 422, "invalid_question", "history item 0 is empty"),
        ("/api/draft", json.dumps({"question": "q?", "history": ["why " * 800]}).encode(), 422, "invalid_question", "history item 0 is 3200 characters long"),
        ("/api/feedback", b'{"interaction_id": "1", "helpful": true}', 422, "invalid_request", "field 'interaction_id'"),
        ("/api/feedback", b'{"interaction_id": 1, "helpful": "yes"}', 422, "invalid_request", "field 'helpful'"),
        ("/api/feedback", b'{"interaction_id": 1}', 422, "invalid_request", "field 'helpful' is required"),
        ("/api/feedback", b'{"interaction_id": 999999, "rating_token": "abc", "helpful": true}', 403, "forbidden",
         "^the rating_token does not match interaction id 999999: send"),
        ("/api/feedback", b'{"interaction_id": 1, "rating_token": 5, "helpful": true}', 422, "invalid_request",
         "field 'rating_token': Input should be a valid string"),
    ],
)
def test_invalid_requests_get_a_4xx_json_error(client, path, body, status, code, message):
    r = client.post(path, content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    error = r.json()["error"]
    assert error["code"] == code
    assert re.search(message, error["message"]), error["message"]


def test_oversize_body_is_413(client):
    big = json.dumps({"question": "a" * (BODY_LIMIT + 10)}).encode()
    r = client.post("/api/ask", content=big, headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"


def test_oversize_chunked_body_is_413(client):
    def chunks():  # no Content-Length: the server has to count what arrives
        yield b'{"question": "'
        for _ in range(BODY_LIMIT // 1024 + 2):
            yield b"a" * 1024
        yield b'"}'

    r = client.post("/api/ask", content=chunks(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"


def test_wrong_method_and_unknown_path_are_json(client):
    r = client.get("/api/ask")
    assert r.status_code == 405 and r.headers["allow"] == "POST"
    assert r.json()["error"]["code"] == "method_not_allowed"
    r = client.post("/api/nothing-here", json={})
    assert r.status_code == 404 and r.json()["error"]["message"] == "no API endpoint /api/nothing-here"


def test_concurrent_requests_are_all_answered_and_logged(client, store):
    before = store.totals().interactions
    questions = ["Can I cancel my order?", "Do you take PayPal?", "How long does shipping take?", "Do you sell watches?"] * 8

    def ask(q: str) -> tuple[int, int]:
        r = client.post("/api/ask", json={"question": q})
        return r.status_code, r.json()["interaction_id"]

    with ThreadPoolExecutor(max_workers=12) as pool:
        results = list(pool.map(ask, questions))
    assert [s for s, _ in results] == [200] * len(questions)
    ids = [i for _, i in results]
    assert len(set(ids)) == len(questions)
    assert store.totals().interactions == before + len(questions)
    assert [store.get(i).question for i in ids] == questions


# --- Gradio's named endpoints --------------------------------------------------------------


def test_gradio_client_ask_returns_the_same_object(url, client):
    from gradio_client import Client

    gc = Client(url, verbose=False)
    assert {"/ask", "/draft"} <= set(gc.view_api(print_info=False, return_format="dict")["named_endpoints"])
    via_gradio = gc.predict("Can I cancel?", api_name="/ask")
    via_json = client.post("/api/ask", json={"question": "Can I cancel?"}).json()
    assert set(via_gradio) == ANSWER_KEYS
    assert without_timing(via_gradio) == without_timing(via_json)
    assert via_gradio["interaction_id"] != via_json["interaction_id"]  # each call is logged
    rating = {"interaction_id": via_gradio["interaction_id"], "rating_token": via_gradio["rating_token"], "helpful": True}
    assert client.post("/api/feedback", json=rating).status_code == 200

    draft = gc.predict("Can I cancel?", "Dana", api_name="/draft")
    assert set(draft) == DRAFT_KEYS and draft["draft"].startswith("Hi Dana,")


def test_gradio_client_gets_a_clear_error_for_an_empty_question(url):
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="the question is empty"):
        Client(url, verbose=False).predict("   ", api_name="/ask")


# --- the staff login (server exposed) ------------------------------------------------------


@pytest.mark.parametrize("auth", [None, ("staff", "wrong"), ("someone", STAFF[1])])
def test_staff_endpoints_need_the_login(locked_url, auth):
    with httpx.Client(base_url=locked_url, timeout=60, auth=auth) as c:
        for method, path in [("POST", "/api/draft"), ("GET", "/api/insights"), ("GET", "/api/export.csv")]:
            r = c.request(method, path, json={"question": "Can I cancel?"} if method == "POST" else None)
            assert r.status_code == 401, (path, r.text)
            assert r.headers["www-authenticate"].startswith("Basic")
            assert r.json()["error"]["code"] == "unauthorized"


def test_staff_login_opens_the_staff_endpoints_while_chat_stays_public(locked_url):
    with httpx.Client(base_url=locked_url, timeout=60) as public:
        answer = public.post("/api/ask", json={"question": "Can I cancel?"})
        assert answer.status_code == 200
        rating = {"interaction_id": answer.json()["interaction_id"], "rating_token": answer.json()["rating_token"], "helpful": True}
        assert public.post("/api/feedback", json=rating).status_code == 200
        assert public.get("/healthz").status_code == 200
        # the staff UI answers with Gradio's login, not with the app
        assert public.get("/staff/config").status_code == 401
    with httpx.Client(base_url=locked_url, timeout=60, auth=STAFF) as staff:
        r = staff.post("/api/draft", json={"question": "Can I cancel?"})
        assert r.status_code == 200 and set(r.json()) == DRAFT_KEYS
        assert staff.get("/api/insights").json()["totals"]["interactions"] == 2


def test_gradio_endpoints_when_locked(locked_url):
    from gradio_client import Client

    public = Client(locked_url, verbose=False)
    assert set(public.view_api(print_info=False, return_format="dict")["named_endpoints"]) == {"/ask"}
    staff = Client(locked_url + "staff/", auth=STAFF, verbose=False)
    assert staff.predict("Can I cancel?", api_name="/draft")["draft"].startswith("Hello,")
    from gradio_client.exceptions import AuthenticationError

    with pytest.raises(AuthenticationError, match="credentials were not provided"):
        Client(locked_url + "staff/", verbose=False)
    with pytest.raises(ValueError, match="Could not login"):  # Gradio answers a wrong password with a 400
        Client(locked_url + "staff/", auth=("staff", "wrong"), verbose=False)


# --- the command line ----------------------------------------------------------------------


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSISTANT_") or k == "ASSISTANT_MODEL_CACHE"}
    env.update(HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False", HF_HUB_DISABLE_PROGRESS_BARS="1", **extra)
    return env


@pytest.mark.parametrize(
    "args, env, message",
    [
        (["--host", "0.0.0.0"], {}, r"^error: refusing to listen on 0\.0\.0\.0 without a staff login"),
        (["--host", "shop.example"], {}, r"^error: refusing to listen on shop\.example"),
        (["--user", "staff"], {}, r"^error: a staff login needs both a user and a password; the password is missing"),
        ([], {"ASSISTANT_PASSWORD": "pw"}, r"^error: a staff login needs both .*the user is missing"),
        (["--port", "70000"], {}, r"^error: --port must be between 0 and 65535, got 70000"),
        (["--host", "0.0.0.0"], {"ASSISTANT_USER": "staff", "ASSISTANT_PASSWORD": "a"},
         r"^error: the staff password is too short for a server other machines can reach \(1 characters; at least 12\)"),
        (["--allowed-host", "http://shop.example/"], {}, r"^error: --allowed-host must be a host name .*'http://shop\.example/'"),
    ],
)
def test_serve_refuses_bad_setups_before_loading_anything(args, env, message):
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "assistant", "serve", *args], capture_output=True, text=True, env=_env(**env),
        cwd=ROOT, timeout=120,
    )
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr  # one clear line, no traceback
    assert re.search(message, proc.stderr.strip()), proc.stderr
    assert time.monotonic() - t0 < 60


def test_serve_on_a_busy_port_is_a_clear_error():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "assistant", "serve", "--port", str(port)], capture_output=True, text=True,
            env=_env(), cwd=ROOT, timeout=120,
        )
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: cannot listen on 127.0.0.1:{port}: Address already in use"


def _run_app(tmp_path, password: str) -> tuple[subprocess.Popen, Lines]:
    proc = subprocess.Popen(
        [sys.executable, "app.py", "--port", "0", "--index-dir", str(tmp_path / "index"), "--data-dir", str(tmp_path / "data")],
        cwd=ROOT, env=_env(ASSISTANT_USER="owner", ASSISTANT_PASSWORD=password), stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True,
    )
    return proc, Lines(proc.stderr)


def _stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise


def test_app_py_builds_the_index_then_serves_and_keeps_feedback_across_restarts(tmp_path, model_cache):
    password = "pw-that-must-never-be-logged"
    index_dir_with_model(tmp_path / "index", model_cache)  # the ONNX export as a second run finds it
    proc, out = _run_app(tmp_path, password)
    try:
        out.wait_for(r"index: building or refreshing", 120)
        out.wait_for(r"index: built \d+ passages", 300)
        url = out.wait_for(r"ready in [\d.]+s: open (http://127\.0\.0\.1:\d+/)", 120).group(1)
        with httpx.Client(base_url=url, timeout=60) as c:
            body = c.post("/api/ask", json={"question": "Can I cancel my order?"}).json()
            assert body["answered"] is True
            assert c.post("/api/draft", json={"question": "Can I cancel?"}).status_code == 401  # login given
            assert c.post("/api/draft", json={"question": "Can I cancel?"}, auth=("owner", password)).status_code == 200
            assert c.get("/").status_code == 200
    finally:
        _stop(proc)
    first_log = "".join(out.lines)
    assert password not in first_log

    proc, out = _run_app(tmp_path, password)  # same index and data folders: nothing to rebuild
    try:
        out.wait_for(r"index: up to date \(\d+ passages\)", 120)
        url = out.wait_for(r"ready in [\d.]+s: open (http://127\.0\.0\.1:\d+/)", 120).group(1)
        health = httpx.get(url + "healthz", timeout=60).json()
        assert health["feedback"]["interactions"] == 2  # the ask and the authorised draft above
    finally:
        _stop(proc)
    assert password not in "".join(out.lines)
