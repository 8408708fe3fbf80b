"""Request limits on every route, the Gradio ones included: body size, body read timeout, a
per-client rate limit, and the Gradio routes this app never uses blocked."""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections import OrderedDict

from assistant.server.http import API_PREFIX, client_address, error_response

MAX_BODY_BYTES = 64 * 1024
# Every other route (the Gradio UI's): the chat posts its whole history with each question, so
# it gets more room, but a bound all the same (Gradio itself reads any body into memory).
MAX_UI_BODY_BYTES = 1024 * 1024
BODY_TIMEOUT_S = 30.0
MAX_RATE_CLIENTS = 10_000
# Gradio routes this app never uses and that reach outside it: uploads (Gradio would accept
# files of any size into its temp folder from anyone; the UI has no file inputs), the reverse
# proxy to other Gradio apps, and file= with a URL (the server would fetch it from the internet).
# The Gradio UI's own API is a second way to ask: its event calls count against the same limit.
GRADIO_EVENT_RE = re.compile(r"/gradio_api/(?:queue/join|call/|run/|api/)")
BLOCKED_GRADIO_PATHS = re.compile(r"/gradio_api/(?:upload(?:_progress)?/?$|proxy=|file[=/]\s*https?:)", re.IGNORECASE)


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
        client = client_address(scope)
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
