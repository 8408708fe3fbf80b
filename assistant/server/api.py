"""The web server: JSON API (/api/ask, /api/draft, /api/feedback, /healthz) plus the Gradio UI at /.

Without ``auth`` every view is open (the default, loopback-only setup). With ``auth`` the
customer chat stays public at ``/`` while the agent drafter and insights move to ``/staff/``
behind Gradio's login, and the staff JSON endpoints need HTTP Basic credentials.
Every error a client can cause is answered with a 4xx and a JSON body ``{"error": {...}}``.
"""

from __future__ import annotations

import logging
import math
import re
import secrets
import time
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPBasic, HTTPBasicCredentials
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr
from starlette.exceptions import HTTPException as StarletteHTTPException

from assistant.errors import AssistantError, FeedbackError, RatingRefusedError, StoreUnavailableError, UnavailableError

if TYPE_CHECKING:
    from assistant.server.feedback import FeedbackStore
    from assistant.core.pipeline import Assistant

log = logging.getLogger("assistant.server.api")

MAX_BODY_BYTES = 64 * 1024
API_PREFIX = "/api/"
STAFF_PATH = "/staff"
MAX_RATE_CLIENTS = 10_000
# Gradio routes this app never uses and that reach outside it: uploads (Gradio would accept
# files of any size into its temp folder from anyone; the UI has no file inputs), the reverse
# proxy to other Gradio apps, and file= with a URL (the server would fetch it from the internet).
# The Gradio UI's own API is a second way to ask: its event calls count against the same limit.
GRADIO_EVENT_RE = re.compile(r"/gradio_api/(?:queue/join|call/|run/)")
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
    rating_token: Annotated[StrictStr, Field(max_length=200)]  # returned with the answer: only its requester rates it
    helpful: StrictBool | None


# Module level: FastAPI resolves the (string) annotation in this module's namespace.
StaffCredentials = Annotated[HTTPBasicCredentials | None, Depends(HTTPBasic(auto_error=False))]


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


class BodySizeLimit:
    """ASGI middleware: requests under ``prefix`` with a body over ``max_bytes`` get a 413 JSON answer.

    Checks the declared Content-Length first, then counts the bytes actually received (for
    chunked uploads), so an oversize body is never read into memory.
    """

    def __init__(self, app, *, max_bytes: int = MAX_BODY_BYTES, prefix: str = API_PREFIX) -> None:
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be > 0, got {max_bytes}")
        self.app = app
        self.max_bytes = max_bytes
        self.prefix = prefix

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await error_response(400, "bad_request", "Content-Length is not a number")(scope, receive, send)
                    return
                if declared > self.max_bytes:
                    await self._too_large(scope, receive, send)
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
                if received > self.max_bytes:
                    # Answer now and tell the app the client went away: it stops reading, and
                    # whatever it tries to send afterwards is dropped.
                    rejected = True
                    await self._too_large(scope, receive, send)
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

    async def _too_large(self, scope, receive, send) -> None:
        response = error_response(
            413, "payload_too_large", f"request body is larger than {self.max_bytes} bytes", {"Connection": "close"}
        )
        await response(scope, receive, send)


class RateLimit:
    """ASGI middleware: a token bucket per client address for requests under ``prefix`` and for
    POSTs that start a Gradio event (``/gradio_api/queue/join``, ``call/``, ``run/``).

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
        client = (scope.get("client") or ("unknown", 0))[0]
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
    """
    from assistant.server.service import AssistantService

    if auth is not None and (len(auth) != 2 or not all(isinstance(a, str) and a for a in auth)):
        raise ValueError("auth must be a (user, password) pair of non-empty strings")
    service = AssistantService(assistant, store, corpus=corpus, index_dir=index_dir, refresh_wait_s=refresh_wait_s, log=refresh_log)
    app = FastAPI(title=title, docs_url="/api/docs", redoc_url=None, openapi_url="/api/openapi.json")
    app.state.service = service
    app.add_middleware(BodySizeLimit, max_bytes=max_body_bytes, prefix=API_PREFIX)
    if rate_limit_per_min is not None:
        # Added last, so it runs first: a client over its limit costs no body read at all.
        app.add_middleware(RateLimit, per_minute=rate_limit_per_min, burst=rate_burst, prefix=API_PREFIX)
    app.add_middleware(BlockPaths)

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

    @app.exception_handler(FeedbackError)
    async def on_feedback_error(request: Request, exc: FeedbackError):
        return error_response(404, "not_found", str(exc))

    @app.exception_handler(RatingRefusedError)
    async def on_rating_refused(request: Request, exc: RatingRefusedError):
        # 403 whether or not the id exists: ids cannot be probed.
        return error_response(403, "forbidden", str(exc))

    @app.exception_handler(StoreUnavailableError)
    async def on_store_unavailable(request: Request, exc: StoreUnavailableError):
        log.error("feedback database: %s", exc.detail)  # the URL in it is redacted
        return error_response(503, "feedback_unavailable", str(exc), {"Retry-After": str(exc.retry_after_s)})

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

    def require_staff(credentials: StaffCredentials) -> None:
        if auth is None:
            return
        # Both comparisons always run, in constant time, so timing tells nothing about which failed.
        ok = credentials is not None and all(
            [
                secrets.compare_digest(credentials.username.encode(), auth[0].encode()),
                secrets.compare_digest(credentials.password.encode(), auth[1].encode()),
            ]
        )
        if not ok:
            raise StarletteHTTPException(
                401, "this endpoint needs the staff login (HTTP Basic)", headers={"WWW-Authenticate": 'Basic realm="staff"'}
            )

    @app.get("/healthz")
    def healthz() -> JSONResponse:
        health = service.health()
        # A log that cannot be written is unhealthy: a load balancer stops sending answers there.
        return JSONResponse(health, status_code=503 if health["status"] == "feedback_error" else 200)

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
        store.rate_with_token(body.interaction_id, body.rating_token, body.helpful)
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
        _mount_ui(app, service, auth=auth, title=title)
    return app


def _mount_ui(app: FastAPI, service, *, auth: tuple[str, str] | None, title: str) -> None:
    import gradio as gr

    from assistant.server.web import CSS, build_ui

    common: dict[str, Any] = dict(
        footer_links=["api"], run_history=False, show_error=False, ssr_mode=False, css=CSS, theme=gr.themes.Soft(),
    )
    if auth is None:
        gr.mount_gradio_app(app, build_ui(service, title=title), path="/", **common)
        return
    # Mounts are matched in order: the staff app must come before the catch-all "/".
    staff = build_ui(service, tabs=("agent", "insights"), title=f"{title}: staff")
    gr.mount_gradio_app(
        app, staff, path=STAFF_PATH, auth=[auth], auth_message="Staff login for the reply drafter and insights.", **common
    )
    gr.mount_gradio_app(app, build_ui(service, tabs=("chat",), title=title), path="/", **common)

