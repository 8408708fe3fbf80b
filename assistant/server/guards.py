"""Guards in front of the app: the Host check (DNS rebinding), the staff login throttle and its
SameSite cookie, and the checks that answer Gradio's bad calls with a 4xx instead of its 500."""

from __future__ import annotations

import json
import math
import re
import time
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from fastapi.responses import JSONResponse

from assistant.core.stages import clean_question
from assistant.errors import (
    QuestionError,
)
from assistant.server.http import STAFF_PATH, client_address, error_response
from assistant.server.limits import MAX_RATE_CLIENTS

# Names a browser on this machine uses for a loopback server; anything else in a Host header
# means a DNS-rebinding page (or a proxy that must be named with --allowed-host).
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
LOGIN_FREE_FAILURES = 5
LOGIN_LOCK_S = 30.0
LOGIN_MAX_LOCK_S = 15 * 60.0
# The Gradio routes that run a function, with the mount they are under ("" or /staff).
GRADIO_CALL_RE = re.compile(
    r"^(?P<mount>(?:/[^/]+)*?)/gradio_api/(?:(?P<route>run|api|call/v2|call)/(?P<name>[^/]+)|(?P<join>queue/join))/?$"
)
GRADIO_LOGIN_RE = re.compile(r"^(?P<mount>(?:/[^/]+)*?)/login/?$")


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
        client = client_address(scope)
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
        padded = self.padded(blocks, m, body)
        if padded is not body:  # the body grew: its Content-Length with it
            headers = [(k, v) for k, v in scope["headers"] if k.lower() != b"content-length"]
            scope = {**scope, "headers": [*headers, (b"content-length", str(len(padded)).encode())]}
            body = padded
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
        if any(v is not None and not isinstance(v, str) and not _texts(v) for v in data[1:]):
            return error_response(
                422, "invalid_request", "'data' values after the question must be text or null (the history: a list of text)"
            )
        return None

    def padded(self, blocks, m: re.Match, body: bytes) -> bytes:
        """``body`` with the optional values a raw call left out (``history``) sent as null: Gradio
        itself wants every input, while its Python client fills in the defaults."""
        if m.group("route") not in ("run", "api") or m.group("name") not in self.questions:
            return body
        try:
            payload = json.loads(body)
        except (ValueError, RecursionError):
            return body
        fn = next((f for f in blocks.fns.values() if f.api_name == m.group("name")), None)
        data = payload.get("data") if isinstance(payload, dict) else None
        if fn is None or not isinstance(data, list) or len(data) >= len(fn.inputs):
            return body
        return json.dumps({**payload, "data": [*data, *[None] * (len(fn.inputs) - len(data))]}).encode()


def _texts(value: Any) -> bool:
    """A conversation's history: a list of strings."""
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


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
