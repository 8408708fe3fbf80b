"""The web server: JSON API (/api/ask, /api/draft, /api/feedback, /healthz) plus the Gradio UI at /.

Without ``auth`` every view is open (the default, loopback-only setup). With ``auth`` the
customer chat stays public at ``/`` while the agent drafter and insights move to ``/staff/``
behind Gradio's login, and the staff JSON endpoints need HTTP Basic credentials.
Every error a client can cause is answered with a 4xx and a JSON body ``{"error": {...}}``.
Middleware guards every route, the Gradio ones included: a Host check (DNS rebinding), no
cross-origin reads, a body size limit and read timeout, a per-client rate limit, a login
throttle, and checks that answer Gradio's bad calls with a 4xx instead of its 500.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import urlsplit

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPBasic, HTTPBasicCredentials
from pydantic import BaseModel, ConfigDict, StrictBool, StrictInt, StrictStr
from starlette.exceptions import HTTPException as StarletteHTTPException

from assistant.core.stages import clean_question
from assistant.errors import AssistantError, FeedbackError, QuestionError, UnavailableError

if TYPE_CHECKING:
    from assistant.server.feedback import FeedbackStore
    from assistant.core.pipeline import Assistant

log = logging.getLogger("assistant.server.api")

MAX_BODY_BYTES = 64 * 1024
# Every other route (the Gradio UI's): the chat posts its whole history with each question, so
# it gets more room, but a bound all the same (Gradio itself reads any body into memory).
MAX_UI_BODY_BYTES = 1024 * 1024
BODY_TIMEOUT_S = 30.0
API_PREFIX = "/api/"
STAFF_PATH = "/staff"
MAX_RATE_CLIENTS = 10_000
# Names a browser on this machine uses for a loopback server; anything else in a Host header
# means a DNS-rebinding page (or a proxy that must be named with --allowed-host).
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
LOGIN_FREE_FAILURES = 5
LOGIN_LOCK_S = 30.0
LOGIN_MAX_LOCK_S = 15 * 60.0
# Gradio routes this app never uses and that reach outside it: uploads (Gradio would accept
# files of any size into its temp folder from anyone; the UI has no file inputs), the reverse
# proxy to other Gradio apps, and file= with a URL (the server would fetch it from the internet).
# The Gradio UI's own API is a second way to ask: its event calls count against the same limit.
GRADIO_EVENT_RE = re.compile(r"/gradio_api/(?:queue/join|call/|run/|api/)")
# The Gradio routes that run a function, with the mount they are under ("" or /staff).
GRADIO_CALL_RE = re.compile(
    r"^(?P<mount>(?:/[^/]+)*?)/gradio_api/(?:(?P<route>run|api|call/v2|call)/(?P<name>[^/]+)|(?P<join>queue/join))/?$"
)
GRADIO_LOGIN_RE = re.compile(r"^(?P<mount>(?:/[^/]+)*?)/login/?$")
BLOCKED_GRADIO_PATHS = re.compile(r"/gradio_api/(?:upload(?:_progress)?/?$|proxy=|file[=/]\s*https?:)", re.IGNORECASE)


class AskRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    question: StrictStr


class DraftRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    question: StrictStr
    customer_name: StrictStr | None = None
    agent_name: StrictStr | None = None


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    interaction_id: StrictInt
    helpful: StrictBool | None


# Module level: FastAPI resolves the (string) annotation in this module's namespace.
StaffCredentials = Annotated[HTTPBasicCredentials | None, Depends(HTTPBasic(auto_error=False))]


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


class BodySizeLimit:
    """ASGI middleware: a request with a body over its limit gets a 413 JSON answer.

    Requests under ``prefix`` (the JSON API) may send ``max_bytes``; every other route (the
    Gradio UI and its API, under ``/`` and ``/staff/``) ``other_max_bytes``. Checks the declared
    Content-Length first, then counts the bytes actually received (for chunked uploads), so an
    oversize body is never read into memory.
    """

    def __init__(
        self, app, *, max_bytes: int = MAX_BODY_BYTES, prefix: str = API_PREFIX, other_max_bytes: int = MAX_UI_BODY_BYTES
    ) -> None:
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be > 0, got {max_bytes}")
        if other_max_bytes <= 0:
            raise ValueError(f"other_max_bytes must be > 0, got {other_max_bytes}")
        self.app = app
        self.max_bytes = max_bytes
        self.other_max_bytes = other_max_bytes
        self.prefix = prefix

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes if scope["path"].startswith(self.prefix) else self.other_max_bytes
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await error_response(400, "bad_request", "Content-Length is not a number")(scope, receive, send)
                    return
                if declared > limit:
                    await self._too_large(limit, scope, receive, send)
                    return
        received = 0
        rejected = False

        async def counting_receive():
            nonlocal received, rejected
            if rejected:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # Answer now and tell the app the client went away: it stops reading, and
                    # whatever it tries to send afterwards is dropped.
                    rejected = True
                    await self._too_large(limit, scope, receive, send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message):
            if not rejected:
                await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not rejected:
                raise

    async def _too_large(self, limit: int, scope, receive, send) -> None:
        response = error_response(
            413, "payload_too_large", f"request body is larger than {limit} bytes", {"Connection": "close"}
        )
        await response(scope, receive, send)


class BodyReadTimeout:
    """ASGI middleware: a request body must arrive within ``timeout_s`` of the app's first read,
    else 408 (JSON) and the connection is closed.

    uvicorn times out only idle keep-alive connections, so a client that declares a body and
    sends it slowly (or never) would hold a connection and a worker open for as long as it
    likes. Once the body is complete, reads pass straight through (the app then waits on them
    only to learn of a disconnect, e.g. during a streamed answer).
    """

    def __init__(self, app, *, timeout_s: float = BODY_TIMEOUT_S) -> None:
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        self.app = app
        self.timeout_s = timeout_s

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        deadline: float | None = None
        complete = timed_out = started = False

        async def timed_receive():
            nonlocal deadline, complete, timed_out
            if timed_out:
                return {"type": "http.disconnect"}
            if complete:
                return await receive()
            if deadline is None:
                deadline = loop.time() + self.timeout_s
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                timed_out = True
                if not started:
                    message = f"the request body did not arrive within {self.timeout_s:g} s"
                    await error_response(408, "request_timeout", message, {"Connection": "close"})(scope, receive, send)
                return {"type": "http.disconnect"}
            if message["type"] != "http.request" or not message.get("more_body", False):
                complete = True
            return message

        async def guarded_send(message):
            nonlocal started
            if timed_out:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, timed_receive, guarded_send)
        except Exception:
            if not timed_out:
                raise


class HostCheck:
    """ASGI middleware: a request whose ``Host`` header names none of ``allowed_hosts`` gets a 400.

    A page on another site can make a browser send requests to a server on this machine by
    pointing its own DNS name at 127.0.0.1 (DNS rebinding); the Host header still carries that
    name, so only the names the server is really reached by are let through. ``*`` allows any;
    ``*.example.com`` any sub-domain. Ports are not compared.
    """

    def __init__(self, app, *, allowed_hosts: Iterable[str]) -> None:
        self.app = app
        self.allowed = {_host_name(h) for h in allowed_hosts}
        self.allowed.discard("")
        if not self.allowed:
            raise ValueError("allowed_hosts must name at least one host (or * for any)")
        self.any = "*" in self.allowed
        self.suffixes = tuple(h[1:] for h in self.allowed if h.startswith("*."))

    def allows(self, host_header: str | None) -> bool:
        if self.any:
            return True
        name = _host_name(host_header or "")
        return bool(name) and (name in self.allowed or name.endswith(self.suffixes))

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        host = next((v.decode("latin-1") for k, v in scope.get("headers", ()) if k == b"host"), None)
        if self.allows(host):
            await self.app(scope, receive, send)
            return
        shown = (host or "")[:100]
        message = (
            f"host {shown!r} is not one this server answers to; "
            "a reverse proxy's name must be allowed with --allowed-host (or ASSISTANT_ALLOWED_HOSTS)"
        )
        if scope["type"] == "http":
            await error_response(400, "invalid_host", message)(scope, receive, send)
        else:
            await send({"type": "websocket.close", "code": 1008})


def _host_name(host: str) -> str:
    """The lower-case name in a Host header or a host setting: no port, brackets or trailing dot."""
    host = host.strip().lower()
    if host == "*" or host.startswith("*."):
        return host
    if host.count(":") > 1 and not host.startswith("["):  # a bare IPv6 address, as in a setting
        host = f"[{host}]"
    try:
        name = urlsplit("//" + host).hostname or ""
    except ValueError:  # e.g. an unclosed [ or a port that is not a number
        return ""
    return name.rstrip(".")


class LoginThrottle:
    """Failed staff logins per client address: after ``free_failures`` in a row the client is
    locked out for ``lock_s``, doubling with each further failure up to ``max_lock_s``.

    While locked, every login attempt from that client is refused without looking at the
    password (the right one too), so guessing costs time, not just requests. A success clears
    the count. At most ``max_clients`` addresses are remembered (least recently seen forgotten).
    """

    def __init__(
        self,
        *,
        free_failures: int = LOGIN_FREE_FAILURES,
        lock_s: float = LOGIN_LOCK_S,
        max_lock_s: float = LOGIN_MAX_LOCK_S,
        max_clients: int = MAX_RATE_CLIENTS,
        clock=time.monotonic,
    ) -> None:
        if free_failures < 1:
            raise ValueError(f"free_failures must be >= 1, got {free_failures}")
        if not 0 < lock_s <= max_lock_s:
            raise ValueError(f"need 0 < lock_s <= max_lock_s, got {lock_s} and {max_lock_s}")
        self.free_failures = free_failures
        self.lock_s = lock_s
        self.max_lock_s = max_lock_s
        self.max_clients = max_clients
        self.clock = clock
        self.clients: OrderedDict[str, tuple[int, float]] = OrderedDict()  # client -> (failures, locked until)

    def wait(self, client: str) -> float:
        """Seconds until ``client`` may try again (0: now)."""
        _, until = self.clients.get(client, (0, 0.0))
        return max(0.0, until - self.clock())

    def failed(self, client: str) -> None:
        failures, until = self.clients.pop(client, (0, 0.0))
        failures += 1
        if failures >= self.free_failures:
            lock = min(self.max_lock_s, self.lock_s * 2 ** (failures - self.free_failures))
            until = self.clock() + lock
        self.clients[client] = (failures, until)
        while len(self.clients) > self.max_clients:
            self.clients.popitem(last=False)

    def succeeded(self, client: str) -> None:
        self.clients.pop(client, None)

    def refusal(self, client: str, wait: float) -> JSONResponse:
        retry = max(1, math.ceil(wait))
        return error_response(
            429, "login_locked", f"too many failed logins from {client}; try again in {retry} s",
            {"Retry-After": str(retry)},
        )


class LoginGuard:
    """ASGI middleware around Gradio's staff login form (``POST <mount>/login``): throttles
    failures with ``throttle`` and keeps its session cookie off cross-site requests.

    Gradio sets that cookie with ``SameSite=None`` (it may be embedded in other sites); this app
    never is, so the cookie is rewritten to ``SameSite=Lax``: a page on another site can then
    neither post to the staff app with it nor read anything back.
    """

    def __init__(self, app, *, throttle: LoginThrottle, mounts: Iterable[str] = (STAFF_PATH,)) -> None:
        self.app = app
        self.throttle = throttle
        self.mounts = set(mounts)

    async def __call__(self, scope, receive, send) -> None:
        m = GRADIO_LOGIN_RE.match(scope["path"]) if scope["type"] == "http" else None
        if m is None or m.group("mount") not in self.mounts:
            await self.app(scope, receive, send)
            return
        if scope["method"] != "POST":
            await self.app(scope, receive, _same_site_lax(send))
            return
        client = _client(scope)
        wait = self.throttle.wait(client)
        if wait > 0:
            await self.throttle.refusal(client, wait)(scope, receive, send)
            return
        status = 0
        lax_send = _same_site_lax(send)

        async def watching_send(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await lax_send(message)

        await self.app(scope, receive, watching_send)
        if status == 200:
            self.throttle.succeeded(client)
        elif 400 <= status < 500:  # Gradio answers a wrong user or password with 400
            self.throttle.failed(client)


def _same_site_lax(send):
    async def rewrite(message):
        if message["type"] == "http.response.start":
            message["headers"] = [
                (k, re.sub(rb"(?i)samesite=none", b"SameSite=Lax", v) if k.lower() == b"set-cookie" else v)
                for k, v in message.get("headers", ())
            ]
        await send(message)

    return rewrite


def _client(scope) -> str:
    return (scope.get("client") or ("unknown", 0))[0]


class GradioGuard:
    """ASGI middleware: answers the Gradio calls that Gradio itself would answer with a 500.

    For ``POST <mount>/gradio_api/{run,api,call,call/v2}/<name>`` and ``queue/join``: an unknown
    endpoint name or ``fn_index`` is a 404, and a question to ``run/``/``api/`` of the
    ``questions`` endpoints (their first value) that the assistant would refuse (empty, too long,
    not text) a 422, all as JSON. ``blocks`` maps each mount ("" or /staff) to its Gradio Blocks
    (filled in when the UI is mounted). The body is read here (after the size limit and the read
    timeout) and handed on unchanged.
    """

    def __init__(self, app, *, blocks: dict[str, Any], questions: dict[str, int] | None = None) -> None:
        self.app = app
        self.blocks = blocks
        self.questions = questions or {}

    async def __call__(self, scope, receive, send) -> None:
        m = GRADIO_CALL_RE.match(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        blocks = self.blocks.get(m.group("mount")) if m else None
        if blocks is None:
            await self.app(scope, receive, send)
            return
        chunks = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client left, or a limit above answered already
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        refusal = self.check(blocks, m, body)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    def check(self, blocks, m: re.Match, body: bytes) -> JSONResponse | None:
        try:
            payload = json.loads(body)
        except (ValueError, RecursionError):
            return None  # Gradio answers a body that is not JSON with a 422 of its own
        if not isinstance(payload, dict):
            return None
        fns = blocks.fns
        fn = None
        fn_index = payload.get("fn_index")
        # run/, api/ and queue/join take the function from fn_index when given; call/ by name only.
        if fn_index is not None and m.group("route") in ("run", "api", None):
            index = _as_index(fn_index)
            if index is None:
                return None  # not a number: Gradio's own validation answers 422
            fn = fns.get(index)
            if fn is None:
                return error_response(404, "not_found", f"no Gradio function with fn_index {index}")
        elif m.group("name") is not None:
            name = m.group("name")
            public = m.group("route") == "call/v2"
            fn = next(
                (f for f in fns.values() if f.api_name == name and (not public or f.api_visibility == "public")), None
            )
            if fn is None:
                names = sorted(f.api_name for f in fns.values() if f.api_name and f.api_visibility == "public")
                return error_response(
                    404, "not_found", f"no Gradio API endpoint {name[:100]!r}; this app has: {', '.join(names) or 'none'}"
                )
        if fn is None or m.group("route") not in ("run", "api") or fn.api_name not in self.questions:
            return None
        data = payload.get("data")
        most = self.questions[fn.api_name]
        if not isinstance(data, list) or not 1 <= len(data) <= most:
            count = "one value, the question" if most == 1 else f"1 to {most} values, the question first"
            return error_response(422, "invalid_request", f"'data' must be a list of {count}")
        try:
            clean_question(data[0])
        except QuestionError as exc:
            return error_response(422, "invalid_question", str(exc))
        if any(v is not None and not isinstance(v, str) for v in data[1:]):
            return error_response(422, "invalid_request", "'data' values after the question must be text or null")
        return None


def _as_index(value: Any) -> int | None:
    """``fn_index`` as Gradio's validation would read it (an int, or a whole number or numeric string)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
        return int(value)
    return None


class RateLimit:
    """ASGI middleware: a token bucket per client address for requests under ``prefix`` and for
    POSTs that start a Gradio event (``/gradio_api/queue/join``, ``call/``, ``run/``, ``api/``).

    Each client may send ``burst`` requests at once and ``per_minute`` a minute on average;
    a request over the limit gets a 429 JSON answer with ``Retry-After`` (seconds). The
    client address is the TCP peer, or the ``X-Forwarded-For`` address when uvicorn trusts
    the proxy (by default only a proxy on 127.0.0.1). At most ``max_clients`` buckets are kept:
    the least recently seen client is forgotten first (and starts again with a full bucket).
    """

    def __init__(
        self,
        app,
        *,
        per_minute: float,
        burst: int | None = None,
        prefix: str = API_PREFIX,
        max_clients: int = MAX_RATE_CLIENTS,
        clock=time.monotonic,
    ) -> None:
        if per_minute <= 0:
            raise ValueError(f"per_minute must be > 0, got {per_minute}")
        burst = max(1, math.ceil(per_minute)) if burst is None else burst
        if burst < 1:
            raise ValueError(f"burst must be >= 1, got {burst}")
        if max_clients < 1:
            raise ValueError(f"max_clients must be >= 1, got {max_clients}")
        self.app = app
        self.per_minute = per_minute
        self.rate = per_minute / 60.0  # tokens per second
        self.burst = burst
        self.prefix = prefix
        self.max_clients = max_clients
        self.clock = clock
        self.buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # client -> (tokens, last time)

    def take(self, client: str) -> float:
        """Spend one token of ``client``; return 0 when allowed, else the seconds until a token is back."""
        now = self.clock()
        tokens, last = self.buckets.pop(client, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / self.rate
        self.buckets[client] = (tokens, now)  # re-inserted last: the most recently seen
        while len(self.buckets) > self.max_clients:
            self.buckets.popitem(last=False)
        return wait

    def limited(self, scope) -> bool:
        path = scope["path"]
        return path.startswith(self.prefix) or (scope["method"] == "POST" and bool(GRADIO_EVENT_RE.search(path)))

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or not self.limited(scope):
            await self.app(scope, receive, send)
            return
        client = _client(scope)
        # The event loop runs one middleware call at a time, so the buckets need no lock.
        wait = self.take(client)
        if wait <= 0:
            await self.app(scope, receive, send)
            return
        retry = max(1, math.ceil(wait))
        limit = f"{self.per_minute:g} requests a minute (bursts of {self.burst})"
        await error_response(
            429, "rate_limited", f"too many requests from {client}: the limit is {limit}; retry in {retry} s",
            {"Retry-After": str(retry)},
        )(scope, receive, send)


class BlockPaths:
    """ASGI middleware: requests whose (decoded) path matches ``pattern`` get a 404 JSON answer."""

    def __init__(self, app, *, pattern: re.Pattern = BLOCKED_GRADIO_PATHS) -> None:
        self.app = app
        self.pattern = pattern

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and self.pattern.search(scope["path"]):
            message = f"no such endpoint {scope['path'][:200]} (this app takes no uploads and fetches no remote files)"
            await error_response(404, "not_found", message)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _validation_message(exc: RequestValidationError) -> tuple[int, str, str]:
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        detail = next(e for e in errors if e.get("type") == "json_invalid").get("ctx", {}).get("error", "")
        return 400, "invalid_json", f"request body is not valid JSON{': ' + detail if detail else ''}"
    parts = []
    for e in errors:
        loc = [str(p) for p in e.get("loc", ()) if p != "body"]
        field = ".".join(loc) if loc else "body"
        if e.get("type") == "missing" and not loc:
            parts.append('the request body is empty; send a JSON object such as {"question": "..."}')
        elif e.get("type") == "missing":
            parts.append(f"field '{field}' is required")
        elif e.get("type") == "model_attributes_type":
            parts.append('the body must be a JSON object such as {"question": "..."} (Content-Type: application/json)')
        else:
            parts.append(f"field '{field}': {e.get('msg', 'invalid')}")
    return 422, "invalid_request", "; ".join(parts) or "invalid request"


def create_app(
    assistant: Assistant,
    store: FeedbackStore,
    *,
    auth: tuple[str, str] | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
    title: str = "Support assistant",
    ui: bool = True,
    rate_limit_per_min: float | None = None,
    rate_burst: int | None = None,
    corpus: list[str | Path] | None = None,
    index_dir: str | Path | None = None,
    refresh_wait_s: float = 10.0,
    refresh_log=None,
    allowed_hosts: Iterable[str] | None = LOOPBACK_HOSTS,
    max_ui_body_bytes: int = MAX_UI_BODY_BYTES,
    body_timeout_s: float = BODY_TIMEOUT_S,
    login_throttle: LoginThrottle | None = None,
) -> FastAPI:
    """The FastAPI app serving ``assistant``, logging to ``store``.

    Args:
        auth: (user, password) that the agent drafter, the insights and their JSON endpoints
            require; None leaves everything open (only sensible on a loopback address).
        max_body_bytes: the largest JSON request body accepted (larger: 413).
        ui: mount the Gradio UI (off for API-only tests and deployments).
        rate_limit_per_min: requests a minute each client address may send to the JSON API
            (token bucket; over it: 429 with Retry-After); None: no limit.
        rate_burst: requests a client may send at once (default: one minute's worth).
        corpus, index_dir: the corpus the index was built from and its folder: the server then
            refreshes the index when the files change, and answers 503 (Retry-After) while a
            refresh runs longer than ``refresh_wait_s`` or the edited corpus cannot be loaded.
        refresh_log: called with a line when an index refresh starts, ends or fails (the CLI prints them).
        allowed_hosts: the names the server answers to in the Host header (default: the loopback
            names, against DNS rebinding); others get 400. None: any (a server reached by a name
            it cannot know, behind the staff login).
        max_ui_body_bytes: the largest body any other route (the Gradio UI and its API) accepts.
        body_timeout_s: a request body must arrive within this many seconds (else 408).
        login_throttle: counts failed staff logins (Gradio's form and HTTP Basic) per client and
            locks a client out after too many (default: 5 free failures, then 30 s doubling).
    """
    from assistant.server.service import AssistantService

    if auth is not None and (len(auth) != 2 or not all(isinstance(a, str) and a for a in auth)):
        raise ValueError("auth must be a (user, password) pair of non-empty strings")
    service = AssistantService(assistant, store, corpus=corpus, index_dir=index_dir, refresh_wait_s=refresh_wait_s, log=refresh_log)
    app = FastAPI(title=title, docs_url="/api/docs", redoc_url=None, openapi_url="/api/openapi.json")
    app.state.service = service
    throttle = login_throttle or LoginThrottle()
    # Middleware added later runs first. From the outside in: the Host check, no cross-origin
    # reads, blocked paths, the login throttle, the rate limit (a client over its limit costs no
    # body read at all), the body read timeout and size limit, then the Gradio call checks,
    # which read the (by then bounded) body.
    gradio_blocks: dict[str, Any] = {}  # mount -> Blocks, filled in when the UI is mounted
    app.add_middleware(GradioGuard, blocks=gradio_blocks, questions={"ask": 1, "draft": 3})
    app.add_middleware(BodySizeLimit, max_bytes=max_body_bytes, prefix=API_PREFIX, other_max_bytes=max_ui_body_bytes)
    app.add_middleware(BodyReadTimeout, timeout_s=body_timeout_s)
    if rate_limit_per_min is not None:
        app.add_middleware(RateLimit, per_minute=rate_limit_per_min, burst=rate_burst, prefix=API_PREFIX)
    if auth is not None:
        app.add_middleware(LoginGuard, throttle=throttle)
    app.add_middleware(BlockPaths)
    # With its own CORS middleware on the parent app, Gradio adds none: no Origin is allowed to
    # read responses (Gradio's would reflect any Origin, with credentials, for a public host name).
    app.add_middleware(CORSMiddleware, allow_origins=())
    if allowed_hosts is not None:
        app.add_middleware(HostCheck, allowed_hosts=allowed_hosts)

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(request: Request, exc: RequestValidationError):
        status, code, message = _validation_message(exc)
        return error_response(status, code, message)

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException):
        cause = exc.__cause__
        # FastAPI answers any failure to parse a JSON body with the same vague 400; say which.
        if exc.status_code == 400 and isinstance(cause, UnicodeDecodeError):
            return error_response(
                400, "invalid_encoding",
                f"request body is not valid UTF-8 (byte 0x{cause.object[cause.start]:02x} at offset {cause.start})",
            )
        if exc.status_code == 400 and isinstance(cause, RecursionError):
            return error_response(400, "invalid_json", "request body is not valid JSON: it is nested too deeply")
        code = {401: "unauthorized", 404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(_Refused)
    async def on_refused(request: Request, exc: _Refused):
        return exc.response

    @app.exception_handler(FeedbackError)
    async def on_feedback_error(request: Request, exc: FeedbackError):
        return error_response(404, "not_found", str(exc))

    @app.exception_handler(UnavailableError)
    async def on_unavailable(request: Request, exc: UnavailableError):
        code = {"refreshing": "index_refreshing"}.get(exc.reason, "corpus_unavailable")
        return error_response(503, code, str(exc), {"Retry-After": str(exc.retry_after_s)})

    @app.exception_handler(AssistantError)
    async def on_assistant_error(request: Request, exc: AssistantError):
        return error_response(422, "invalid_question", str(exc))

    @app.exception_handler(Exception)
    async def on_unexpected(request: Request, exc: Exception):
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(500, "internal_error", "internal server error (logged on the server)")

    def require_staff(request: Request, credentials: StaffCredentials) -> None:
        if auth is None:
            return
        client = _client(request.scope)
        if credentials is not None and (wait := throttle.wait(client)) > 0:
            raise _Refused(throttle.refusal(client, wait))
        # Both comparisons always run, in constant time, so timing tells nothing about which failed.
        ok = credentials is not None and all(
            [
                secrets.compare_digest(credentials.username.encode(), auth[0].encode()),
                secrets.compare_digest(credentials.password.encode(), auth[1].encode()),
            ]
        )
        if ok:
            throttle.succeeded(client)
            return
        if credentials is not None:  # a request without credentials is no guess
            throttle.failed(client)
        raise StarletteHTTPException(
            401, "this endpoint needs the staff login (HTTP Basic)", headers={"WWW-Authenticate": 'Basic realm="staff"'}
        )

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        return service.health()

    @app.post("/api/ask")
    def api_ask(body: AskRequest) -> dict[str, Any]:
        return service.ask_payload(body.question, channel="api")

    @app.post("/api/draft", dependencies=[Depends(require_staff)])
    def api_draft(body: DraftRequest) -> dict[str, Any]:
        return service.draft_payload(
            body.question, customer_name=body.customer_name, agent_name=body.agent_name, channel="api"
        )

    @app.post("/api/feedback")
    def api_feedback(body: FeedbackRequest) -> dict[str, Any]:
        store.rate(body.interaction_id, body.helpful)
        return {"interaction_id": body.interaction_id, "helpful": body.helpful}

    @app.get("/api/insights", dependencies=[Depends(require_staff)])
    def api_insights(limit: int = 10) -> dict[str, Any]:
        if not 1 <= limit <= 1000:
            return error_response(422, "invalid_request", f"limit must be between 1 and 1000, got {limit}")
        totals = store.totals()
        return {
            "totals": {
                "interactions": totals.interactions, "answered": totals.answered,
                "ratings": totals.ratings, "helpful": totals.helpful,
            },
            "top_refused": [vars(r) for r in store.top_refused(limit)],
            "lowest_rated": [
                {**vars(r), "helpful_rate": round(r.helpful_rate, 4)} for r in store.lowest_rated(limit)
            ],
            "answer_rate": [{**vars(d), "rate": round(d.rate, 4)} for d in store.answer_rate()],
        }

    @app.get("/api/export.csv", dependencies=[Depends(require_staff)])
    def api_export() -> Response:
        return Response(
            store.export_csv_text(), media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="feedback.csv"'},
        )

    @app.api_route("/api/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"])
    def api_unknown(request: Request, rest: str):
        # Registered last: only requests no endpoint above matched get here, and they get a JSON
        # 404/405 instead of falling through to the Gradio app.
        path = request.url.path
        allowed = sorted(
            m for r in app.routes
            if getattr(r, "path", None) == path and getattr(r, "endpoint", None) is not api_unknown
            for m in r.methods
        )
        if allowed:
            return error_response(
                405, "method_not_allowed", f"{request.method} is not allowed on {path}; use {', '.join(allowed)}",
                {"Allow": ", ".join(allowed)},
            )
        return error_response(404, "not_found", f"no API endpoint {path}")

    if ui:
        gradio_blocks.update(_mount_ui(app, service, auth=auth, title=title))
    return app


class _Refused(Exception):
    """Raised by a dependency to answer with ``response`` as it is."""

    def __init__(self, response: JSONResponse) -> None:
        super().__init__(response.status_code)
        self.response = response


def _mount_ui(app: FastAPI, service, *, auth: tuple[str, str] | None, title: str) -> dict[str, Any]:
    """Mount the Gradio UI(s); return each mount path ("" for /) with its Blocks."""
    import gradio as gr

    from assistant.server.web import CSS, build_ui

    common: dict[str, Any] = dict(
        footer_links=["api"], run_history=False, show_error=False, ssr_mode=False, css=CSS, theme=gr.themes.Soft(),
    )
    if auth is None:
        everything = build_ui(service, title=title)
        gr.mount_gradio_app(app, everything, path="/", **common)
        return {"": everything}
    # Mounts are matched in order: the staff app must come before the catch-all "/".
    staff = build_ui(service, tabs=("agent", "insights"), title=f"{title}: staff")
    gr.mount_gradio_app(
        app, staff, path=STAFF_PATH, auth=[auth], auth_message="Staff login for the reply drafter and insights.", **common
    )
    chat = build_ui(service, tabs=("chat",), title=title)
    gr.mount_gradio_app(app, chat, path="/", **common)
    return {"": chat, STAFF_PATH: staff}

