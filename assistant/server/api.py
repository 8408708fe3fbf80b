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

import logging
import secrets
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPBasic, HTTPBasicCredentials
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr
from starlette.exceptions import HTTPException as StarletteHTTPException

from assistant.errors import (
    AssistantError,
    FeedbackError,
    LinkError,
    RatingRefusedError,
    StoreUnavailableError,
    UnavailableError,
)
from assistant.server.guards import (
    LOOPBACK_HOSTS,
    GradioGuard,
    HostCheck,
    LoginGuard,
    LoginThrottle,
)
from assistant.server.http import API_PREFIX, STAFF_PATH, client_address, error_response
from assistant.server.limits import (
    BODY_TIMEOUT_S,
    MAX_BODY_BYTES,
    MAX_UI_BODY_BYTES,
    BlockPaths,
    BodyReadTimeout,
    BodySizeLimit,
    RateLimit,
)

__all__ = ["LOOPBACK_HOSTS", "MAX_BODY_BYTES", "STAFF_PATH", "LoginThrottle", "RateLimit", "create_app"]

if TYPE_CHECKING:
    from assistant.core.pipeline import Assistant
    from assistant.server.feedback import FeedbackStore

log = logging.getLogger("assistant.server.api")


# The customer's earlier messages, oldest first (assistant/dialogue/resolve.py reads a follow-up with them).
History = Annotated[list[StrictStr], Field(default_factory=list, max_length=20)]


class AskRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    question: StrictStr
    history: History


class DraftRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    question: StrictStr
    history: History
    customer_name: StrictStr | None = None
    agent_name: StrictStr | None = None


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    interaction_id: StrictInt
    rating_token: Annotated[StrictStr, Field(max_length=200)]  # returned with the answer: only its requester rates it
    helpful: StrictBool | None


class LinkRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    question: Annotated[StrictStr, Field(min_length=1, max_length=2000)]
    passage_id: Annotated[StrictStr, Field(min_length=1, max_length=500)]
    by: Annotated[StrictStr, Field(max_length=200)] = ""


# Module level: FastAPI resolves the (string) annotation in this module's namespace.
StaffCredentials = Annotated[HTTPBasicCredentials | None, Depends(HTTPBasic(auto_error=False))]


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
    gradio_blocks: dict[str, Any] = {}  # mount -> Blocks, filled in when the UI is mounted
    app.state.gradio_blocks = gradio_blocks
    throttle = login_throttle or LoginThrottle()
    # Middleware added later runs first. From the outside in: the Host check, no cross-origin
    # reads, blocked paths, the login throttle, the rate limit (a client over its limit costs no
    # body read at all), the body read timeout and size limit, then the Gradio call checks,
    # which read the (by then bounded) body.
    app.add_middleware(GradioGuard, blocks=gradio_blocks, questions={"ask": 2, "draft": 4})
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

    def require_staff(request: Request, credentials: StaffCredentials) -> None:
        if auth is None:
            return
        client = client_address(request.scope)
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
    def healthz() -> JSONResponse:
        health = service.health()
        # A log that cannot be written is unhealthy: a load balancer stops sending answers there.
        return JSONResponse(health, status_code=503 if health["status"] == "feedback_error" else 200)

    @app.post("/api/ask")
    def api_ask(body: AskRequest) -> dict[str, Any]:
        return service.ask_payload(body.question, channel="api", history=body.history)

    @app.post("/api/draft", dependencies=[Depends(require_staff)])
    def api_draft(body: DraftRequest) -> dict[str, Any]:
        return service.draft_payload(
            body.question, customer_name=body.customer_name, agent_name=body.agent_name, channel="api",
            history=body.history,
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
            # The refused questions grouped by meaning: one row per need, with its phrasings.
            "refused_groups": [g.to_dict() for g in service.refused_groups(limit)],
        }

    @app.post("/api/links", dependencies=[Depends(require_staff)])
    def api_links(body: LinkRequest) -> Any:
        # A confirmed question -> passage link (staff only: a customer's thumbs-up never makes one).
        try:
            link = service.add_link(body.question, body.passage_id, by=body.by)
        except LinkError as exc:
            return error_response(422, "invalid_link", str(exc))
        return {**link.to_json(), "line": link.line, "learned": len(service.assistant.index.learned)}

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
    from assistant.extras import import_gradio
    from assistant.server.web import CSS, build_ui

    gr = import_gradio()

    common: dict[str, Any] = dict(
        footer_links=["api"], run_history=False, show_error=False, ssr_mode=False, css=CSS, theme=gr.themes.Soft(),
    )
    if auth is None:
        everything = build_ui(service, title=title)
        gr.mount_gradio_app(app, everything, path="/", **common)
        return _quiet_queues({"": everything})
    # Mounts are matched in order: the staff app must come before the catch-all "/".
    staff = build_ui(service, tabs=("agent", "insights"), title=f"{title}: staff")
    gr.mount_gradio_app(
        app, staff, path=STAFF_PATH, auth=[auth], auth_message="Staff login for the reply drafter and insights.", **common
    )
    chat = build_ui(service, tabs=("chat",), title=title)
    gr.mount_gradio_app(app, chat, path="/", **common)
    return _quiet_queues({"": chat, STAFF_PATH: staff})


# How often an idle Gradio queue looks for work (Gradio's own: every 1 ms, and every 10 ms for
# progress updates; on Windows 50 and 100 ms). Its polling runs on the JSON API's event loop: at
# 1 ms an idle server used 8.5% of a core, at 20 ms 2.0% (scripts/idle_cpu.py). A chat message
# waits at most 20 ms more to start.
UI_QUEUE_POLL_S = 0.02
UI_PROGRESS_POLL_S = 0.1


def _quiet_queues(mounted: dict[str, Any]) -> dict[str, Any]:
    for blocks in mounted.values():
        queue = getattr(blocks, "_queue", None)
        if queue is not None and hasattr(queue, "sleep_when_free"):
            queue.sleep_when_free = max(queue.sleep_when_free, UI_QUEUE_POLL_S)
            queue.progress_update_sleep_when_free = max(queue.progress_update_sleep_when_free, UI_PROGRESS_POLL_S)
    return mounted

