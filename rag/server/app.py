"""The FastAPI app: routes read top-down in the order a client meets them (auth → ask →
collections and jobs → costs → models → health and metrics).

One Chain per replica serves every request; its blocking steps run in worker threads
(`server_threads` of them), and its caches, ledger and rate limits live in Redis when
`REDIS_URL` is set, so replicas behind one load balancer behave as one server.
"""

from __future__ import annotations

import logging
import re
import secrets
import shutil
import time
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import date
from functools import partial
from http import HTTPStatus
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Annotated, Any, Literal

import anyio
from fastapi import Depends, FastAPI, Header, Query, Request, UploadFile
from fastapi import Path as PathParameter
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import AfterValidator
from pydantic_core import PydanticCustomError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.routing import BaseRoute, Match, Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rag.answer import AnswerRecord, Done, Event
from rag.backend import Backend
from rag.conversations import Conversations
from rag.errors import (
    BudgetExceeded,
    ConfigError,
    DataDirUnwritable,
    EmbedderMismatch,
    EmptyCollection,
    GemragError,
    InvalidKey,
    InvalidRequest,
    NoCollection,
    ProviderError,
    QuotaExhausted,
    echoed,
    field_path,
    remote_message,
)
from rag.jobs import Job, Jobs, QueueUnavailable
from rag.kv import StoreUnavailable
from rag.logs import bound, new_request_id
from rag.ratelimit import current_session, shared_limiter
from rag.reports import no_calls_note
from rag.server.auth import ApiKeys, Caller, Forbidden, Role, Unauthorized, presented_key
from rag.server.choices import answer_model, noted
from rag.server.guards import BodyLimit, BodyRefused, KeyRateLimit, RateLimited
from rag.server.metrics import MeteredLedger, Metrics
from rag.server.mounts import MountContext, mount_all
from rag.server.schemas import (
    AnswerOut,
    AskRequest,
    CollectionOut,
    DeltaEvent,
    DocumentOut,
    DocumentsOut,
    ErrorOut,
    FieldErrorOut,
    FolderIngest,
    Health,
    InvalidRequestOut,
    JobOut,
    ModelOut,
    ModelsOut,
    SessionCosts,
    answer_out,
    totals_out,
)
from rag.server.streaming import Drain, EventStream, ServerDraining, ThreadedIterator, sse
from rag.settings import Settings
from rag.store import MAX_NAME_CHARS, check_collection_name, chroma_client, collection_meta
from rag.types import Message as ChatMessage
from rag.types import Prompt
from rag.uploads import UploadRejected, incoming_dir, staged_file, stored_names

log = logging.getLogger("rag.server")
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


class UnknownJob(GemragError):
    """No such job, or not the caller's (404)."""


class UnknownDocument(GemragError):
    """A file the collection does not hold (404)."""


class FileTooLarge(GemragError):
    """One uploaded file over `max_upload_mb` (413): the limit is per file, as the UI's."""


class JobsUnavailable(GemragError):
    """No job queue: REDIS_URL is not set, or no store the worker shares, CHROMA_URL (503)."""


STATUS: dict[type[Exception], int] = {
    Unauthorized: 401,
    Forbidden: 403,
    RateLimited: 429,
    QuotaExhausted: 429,
    BudgetExceeded: 402,
    EmptyCollection: 404,
    InvalidRequest: 422,
    EmbedderMismatch: 409,
    DataDirUnwritable: 503,
    ConfigError: 400,
    InvalidKey: 502,
    ProviderError: 502,
    StoreUnavailable: 503,
    JobsUnavailable: 503,
    ServerDraining: 503,
    QueueUnavailable: 503,
    UnknownJob: 404,
    UnknownDocument: 404,
    FileTooLarge: 413,
}
# Every route that reads a body, path or header declares its 422: else FastAPI documents its
# own {"detail": [...]} shape, which the invalid_request handler never sends. Each of them
# also takes a key (`requires`) and may find a store down.
REFUSED: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "no API key, or one that is not valid (see WWW-Authenticate)"},
    403: {"model": ErrorOut, "description": "the key's role does not allow this, or no keys are configured and the "
                                            "client is not on loopback"},
    422: {"model": InvalidRequestOut, "description": "invalid request: `fields` names each refused field and why"},
    429: {"model": ErrorOut, "description": "too many requests for this key (key_rate_limit): see Retry-After"},
    503: {"model": ErrorOut, "description": "a store (Chroma, Redis) does not answer: retry later"},
    500: {"model": ErrorOut, "description": "a fault of the server's (internal_error): its log holds the cause under "
                                            "the request's X-Request-ID"},
}
# ... and every route that reads a body may refuse it as it comes (BodyLimit, the handlers).
BODY_REFUSED: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "a body that is not UTF-8, or JSON nested too deeply to read"},
    408: {"model": ErrorOut, "description": "a body that stalled (body_timeout_s, body_min_rate_bytes_s)"},
    413: {"model": ErrorOut, "description": "a body over max_request_kb"},
    415: {"model": ErrorOut, "description": "a body not sent as JSON (Content-Type: application/json)"},
}
NOT_FOUND = "no such collection"
READY_CACHE_S = 10.0  # /readyz asks the model API at most this often
READY_DEADLINE_S = 3.0  # ... and waits this long, retries included: within a readiness probe's 5 s
JOB_POLL_S = 0.5  # how often a job's SSE progress stream reads its record
# ... and sends a comment when the job has not changed for this long: a job may wait in the
# queue for hours, and a proxy closes a connection silent for a minute (nginx's default).
JOB_KEEPALIVE_S = 15.0
KEEPALIVE = b": keep-alive\n\n"
CLIENT_GONE = 499  # the client closed the connection before the answer: never sent, counted as such
DOCUMENTS_PAGE = 100  # files listed per request unless `limit` says otherwise ...
ROUTE_CONVERTER = re.compile(r":\w+\}")  # Starlette's "{source:path}", which the OpenAPI paths write "{source}"
UPLOAD_ROUTE = re.compile(r"/v1/collections/(?P<name>[^/]+)/documents")  # the API's own upload route
MAX_DOCUMENTS_PAGE = 1_000  # ... and at most this many: a collection may hold tens of thousands


COUNTED = "gemrag_key_counted"  # request state: `Services.caller` counted it against the key's rate
CALLER = "gemrag_caller"  # request state: the key `Services.caller` found


def openapi_with_events(app: FastAPI, generated: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """FastAPI's schema, plus the stream's own event body (DeltaEvent): no route returns it
    as JSON, so FastAPI left it out, and a generated client had no type for `delta` events."""
    schema = generated()
    schema["components"]["schemas"].setdefault(
        "DeltaEvent", DeltaEvent.model_json_schema(ref_template="#/components/schemas/{model}"))
    return schema


def error_kind(error: Exception) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(error).__name__).lower()


def error_status(error: Exception) -> int:
    return next((code for kind, code in STATUS.items() if isinstance(error, kind)), 500)


def error_response(error: GemragError, fields: Sequence[FieldErrorOut] = (), told: str = "") -> JSONResponse:
    """`fields`: what the request's schema refused; every 422 body lists them, or else the
    field the core named (`InvalidRequest.field`). `told`: the message, when not the error's
    own (`remote_message`)."""
    headers = {}
    retry_after = getattr(error, "retry_after_s", None)
    if retry_after is not None:
        headers["Retry-After"] = str(max(1, round(retry_after + 0.49)))
    if isinstance(error, Unauthorized):
        headers["WWW-Authenticate"] = "Bearer"  # RFC 9110: a 401 says which scheme it wants
    kind, message = error_kind(error), told or remote_message(error)
    if isinstance(error, InvalidRequest) and not fields and error.field:
        fields = [FieldErrorOut(field=f"body.{error.field}", reason=message)]
    body = (InvalidRequestOut(error=kind, message=message, fields=list(fields)) if isinstance(error, InvalidRequest)
            else ErrorOut(error=kind, message=message))
    return JSONResponse(body.model_dump(), status_code=error_status(error), headers=headers)


def refused_fields(error: RequestValidationError) -> list[FieldErrorOut]:
    """FastAPI's validation errors as a field and a reason: body.history[0].role, not
    ["body", "history", 0, "role"], and for a body that is not JSON, where the parser stopped."""
    fields = []
    for problem in error.errors():
        loc, reason = list(problem["loc"]), problem["msg"].removeprefix("Value error, ")  # pydantic's, of our checks
        if problem["type"] == "json_invalid":  # its loc ends with the character the parser stopped at
            reason = f"not valid JSON: {problem['ctx']['error']} (at character {loc.pop()})"
        elif "Expected UploadFile" in reason:  # a form field where a file was due: Starlette's class names
            reason = "must be a file, sent as a file part of the form (curl: -F files=@PATH)"
        fields.append(FieldErrorOut(field=field_path(loc), reason=reason))
    return fields


@dataclass
class Services:
    settings: Settings
    backend: Backend
    keys: ApiKeys
    key_limit: KeyRateLimit
    conversations: Conversations
    metrics: Metrics
    ready_at: float = 0.0  # when the model API last answered /readyz
    drain: Drain = field(default_factory=Drain)  # begun by the shutdown signal (rag.server.__main__)
    _jobs: Jobs | None = None

    @property
    def jobs(self) -> Jobs:
        if self._jobs is None:
            try:
                self._jobs = Jobs(self.settings)
            except ConfigError as exc:
                raise JobsUnavailable(str(exc)) from None
        return self._jobs

    def caller(self, request: Request, presented: str | None) -> Caller:
        """The caller of the `presented` key, its request counted against `key_rate_limit`
        once, however many times it is asked for (an upload is checked before its body is
        read, then by its route)."""
        client = request.client.host if request.client else None
        caller = self.keys.caller(presented, client)
        state = request.scope.setdefault("state", {})
        state[CALLER] = caller  # for the refusals that name collections (`gemrag_error`)
        if self.keys.configured and not state.get(COUNTED):
            self.key_limit.hit(caller.name)
            state[COUNTED] = True
        return caller


# The two ways a key is sent, as security schemes: the schema then says how a route is
# authenticated, and /docs has an "Authorize" button (every "Try it out" was a 401 without one).
# Not refusing by themselves (auto_error=False): `ApiKeys.caller` decides, loopback included.
BEARER = HTTPBearer(auto_error=False, description="an API key (python -m rag.server keygen): 'Authorization: Bearer "
                                                   "<key>'")
API_KEY_HEADER = APIKeyHeader(name="X-API-Key", auto_error=False, description="the same key, the other way to send it")


def key_in(request: Request) -> str | None:
    """The key a request sends, read from its headers where no route dependency has (before
    its body is read, or once FastAPI refused the body)."""
    return presented_key(request.headers.get("authorization"), request.headers.get("x-api-key"))


def requires(role: Role) -> Callable[..., Caller]:
    """A route dependency: the caller, who must hold `role`."""

    def dependency(
        request: Request,
        bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)],
        x_api_key: Annotated[str | None, Depends(API_KEY_HEADER)],
    ) -> Caller:
        presented = bearer.credentials if bearer is not None else x_api_key
        return services(request).caller(request, presented).require(role)

    return dependency


Asker = Annotated[Caller, Depends(requires("ask"))]
Ingester = Annotated[Caller, Depends(requires("ingest"))]
Admin = Annotated[Caller, Depends(requires("admin"))]


def _allowed_collection(name: str) -> str:
    """A refused name as a refused field (422 invalid_request, `path.name`), as a refused
    `collection` in /v1/ask's body is: the routes called the store's check themselves, and its
    ConfigError made the same mistake a 400 config_error there."""
    try:
        return check_collection_name(name)
    except ConfigError as exc:
        raise PydanticCustomError("collection_name", "{reason}", {"reason": str(exc)}) from None


# An ask's session id (the body's rule), or the session an ingest into a collection is charged
# to, "ingest:<collection>" (ingest.spending): a path of 5,000 characters was read and echoed back.
SessionId = Annotated[str, PathParameter(
    max_length=len("ingest:") + MAX_NAME_CHARS, pattern=r"^(?:ingest:)?[A-Za-z0-9._-]+$",
    description="an ask's session id (up to 128 letters, digits, '.', '_' or '-'), or ingest:<collection> (so at "
                f"most {len('ingest:') + MAX_NAME_CHARS} characters in all)")]
# Defined here, not with the bodies in rag.server.schemas: that module is imported by
# `python -m rag costs`, which need not load FastAPI.
CollectionName = Annotated[str, PathParameter(description=f"the collection: 3-{MAX_NAME_CHARS} letters, digits, '.', "
                                                          "'_' or '-', starting and ending with a letter or digit"),
                           AfterValidator(_allowed_collection)]


@dataclass(frozen=True)
class Entry:
    """The collection a route's path names, and its caller, who may use it."""

    name: str
    caller: Caller


def entering(role: Role) -> Callable[..., Entry]:
    """A route dependency: the path's collection, which a caller holding `role` may use (a
    key limited to other collections is refused, 403). Declared in the route's signature, so
    no route naming a collection can forget to check it."""

    # The caller's dependency as a default, FastAPI's other form: an Annotated type here would
    # name this function's locals, which FastAPI cannot resolve from a string annotation.
    holder = Depends(requires(role))

    def dependency(name: CollectionName, caller: Caller = holder) -> Entry:
        return Entry(caller.enter(name), caller)

    return dependency


AskInto = Annotated[Entry, Depends(entering("ask"))]
IngestInto = Annotated[Entry, Depends(entering("ingest"))]
AdminInto = Annotated[Entry, Depends(entering("admin"))]


def services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]  # Starlette's app.state is untyped


def create_app(
    settings: Settings,
    backend: Backend | None = None,
    *,
    metrics: Metrics | None = None,
    mounts: list[EntryPoint] | None = None,
) -> FastAPI:
    """`backend` and `metrics` (its ledger's) are made from settings unless given; `mounts`:
    entry points to mount instead of the installed ones (tests pass [])."""
    metrics = metrics or Metrics()
    backend = backend or Backend.build(settings, ledger=MeteredLedger(settings, metrics))
    metrics.watch(settings, backend.ledger)
    keys = ApiKeys.load(settings.api_keys, settings.api_keys_file)
    shared_limiter(settings).observers.append(lambda model, wait: metrics.ratelimit_wait.labels(model).observe(wait))
    state = Services(settings, backend, keys, KeyRateLimit(settings), Conversations(settings), metrics)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncGenerator[None, None]:
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.server_threads
        await anyio.to_thread.run_sync(state.backend.warm_up)  # before the first request, not in it
        yield
        # The answers the shutdown ended are closed, and charged, before the process exits.
        await anyio.to_thread.run_sync(state.drain.wait_closed, settings.request_timeout_s)

    app = FastAPI(
        title="gemrag",
        version="1",
        summary="Question answering over your own documents with Gemini: streamed, cited, costed.",
        lifespan=lifespan,
    )
    app.state.services = state
    app.openapi = partial(openapi_with_events, app, app.openapi)  # type: ignore[method-assign]  # FastAPI's own hook

    def refused(kind: str, scope: Scope) -> None:
        metrics.errors.labels(kind, route_path(scope, app.router.routes)).inc()

    def keyless_upload(scope: Scope) -> JSONResponse | None:
        """An API upload refused before its body is read: no valid key (401), a key that may
        not ingest or not into this collection (403), or one past its request rate (429). The
        upload limit (200 MB) let anyone, or any ask key, make a replica read that much first.
        The route checks again."""
        request = Request(scope)
        try:
            caller = state.caller(request, key_in(request))
            caller.require("ingest")
            if into := UPLOAD_ROUTE.fullmatch(scope["path"]):
                caller.enter(into["name"])
        except (Unauthorized, Forbidden, RateLimited, StoreUnavailable) as refused_caller:
            metrics.errors.labels(error_kind(refused_caller), route_path(scope, app.router.routes)).inc()
            return error_response(refused_caller)
        return None

    upload_paths: list[str] = []  # the mounted apps' upload routes (MountContext.upload_paths)
    app.add_middleware(BodyLimit, default_bytes=settings.max_request_kb * 1000,
                       upload_bytes=settings.max_upload_bytes * settings.max_upload_files + 64_000,
                       upload_paths=upload_paths, timeout_s=settings.body_timeout_s,
                       min_rate=settings.body_min_rate_bytes_s, on_refused=refused, refuse_upload=keyless_upload)
    app.add_middleware(Instrumented, metrics=metrics, routes=app.router.routes)
    if settings.cors_origins:  # outermost: the refusals above (413, 408, a fault's 500) reach a browser too
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST", "DELETE"],
                           allow_headers=["Authorization", "Content-Type", "X-API-Key", "X-Request-ID"],
                           expose_headers=["X-Request-ID", "Retry-After"])

    @app.exception_handler(GemragError)
    async def gemrag_error(request: Request, error: GemragError) -> JSONResponse:
        metrics.errors.labels(error_kind(error), route_path(request.scope)).inc()
        if isinstance(error, DataDirUnwritable):  # the client is told less: the operator reads it here
            log.error("%s %s: %s", request.method, request.url.path, error)
        caller = request.scope.get("state", {}).get(CALLER)
        if isinstance(error, NoCollection) and isinstance(caller, Caller):  # only the collections it may use
            return error_response(error, told=error.told(caller.reaches))
        return error_response(error)

    def refused_key(request: Request) -> JSONResponse | None:
        """The 401 or 403 for a request whose body could not be read, where its key is
        checked: FastAPI parses the body before the route's key check runs, and a caller
        without a key must learn nothing of the body's shape, only that a key is needed."""
        try:
            services(request).caller(request, key_in(request))
        except (Unauthorized, Forbidden) as refused_caller:
            metrics.errors.labels(error_kind(refused_caller), route_path(request.scope)).inc()
            return error_response(refused_caller)
        return None

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        """In the shape of every other error, rather than FastAPI's {"detail": [...]}, which
        also echoes the refused input back (all of an 8,000-character question). A body that
        is not JSON at all has its key checked first (`refused_key`)."""
        if any(e["type"] == "json_invalid" for e in error.errors()) and (keyless := refused_key(request)):
            return keyless
        sent = request.headers.get("content-type", "").partition(";")[0].strip().lower()
        # What FastAPI reads as JSON: not a body without a type, which its strict content type
        # (against cross-site requests a browser sends without asking) leaves unread.
        json_like = sent == "application/json" or sent.endswith("+json")
        if not json_like and any(tuple(e["loc"]) == ("body",) for e in error.errors()):
            # a JSON body sent as text/plain, a form or with no type: "Input should be a valid
            # dictionary" said nothing useful
            metrics.errors.labels("unsupported_media_type", route_path(request.scope)).inc()
            body = ErrorOut(error="unsupported_media_type", message="Send the body as JSON, with Content-Type: "
                            f"application/json (got {sent or 'none'}).")
            return JSONResponse(body.model_dump(), status_code=415)
        fields = refused_fields(error)
        refused = InvalidRequest("; ".join(f"{f.field}: {f.reason}" for f in fields))
        metrics.errors.labels(error_kind(refused), route_path(request.scope)).inc()
        return error_response(refused, fields)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> Response:
        """Starlette's own refusals (an unknown path, a wrong method, a body it cannot parse)
        in the same shape as ours: {"error": "not_found", "message": "Not Found"}. A client
        that left while its body was read is no refusal: FastAPI turns that ClientDisconnect
        into a 400 too, which counted as an error answered and fed the error-rate alert
        though no one was there to read it. It gets 499 (nginx's "client closed request"),
        which Instrumented counts as a request, and is not an error."""
        if isinstance(error.__cause__, ClientDisconnect):
            return Response(status_code=CLIENT_GONE)
        unread = isinstance(error.__cause__, UnicodeDecodeError | RecursionError)  # a body FastAPI could not parse
        if unread and (keyless := refused_key(request)):
            return keyless
        kind = re.sub(r"\W+", "_", HTTPStatus(error.status_code).phrase).lower()
        if not isinstance(error.__cause__, BodyRefused):  # BodyLimit answers that one (413, 408), and counts it
            metrics.errors.labels(kind, route_path(request.scope)).inc()
        message = str(error.detail)
        if isinstance(error.__cause__, UnicodeDecodeError):  # FastAPI said only "error parsing the body"
            bad = error.__cause__
            message = (f"The body is not UTF-8 text (byte {bad.start}: {bad.object[bad.start:bad.start + 1]!r}): "
                       "send JSON encoded in UTF-8.")
        elif isinstance(error.__cause__, RecursionError):  # '{"history": [[[[...' thousands deep
            message = "The body's JSON is nested too deeply to read: no field of this API nests more than a few levels."
        body = ErrorOut(error=kind, message=message)
        return JSONResponse(body.model_dump(), status_code=error.status_code, headers=error.headers)

    add_routes(app)
    login = None
    if keys.configured:
        def login(name: str, key: str) -> bool:
            try:
                return keys.caller(key, None).name == name
            except GemragError:
                return False
    context = MountContext(settings, backend, login, keys.caller_of if keys.configured else None, upload_paths)
    app.state.mounted = mount_all(app, context, mounts)
    return app


def add_routes(app: FastAPI) -> None:
    @app.post(
        "/v1/ask",
        response_model=AnswerOut,
        responses={
            200: {"content": {"text/event-stream": {"schema": {"type": "string"}}},
                  "description": "stream=true: `delta` events (DeltaEvent), then one `done` event (AnswerOut), "
                                 "or an `error` event (ErrorOut). stream=false: one AnswerOut."},
            **REFUSED,
            **BODY_REFUSED,
            402: {"model": ErrorOut, "description": "a session or daily budget would be exceeded"},
            404: {"model": ErrorOut, "description": f"{NOT_FOUND} (no_collection), or one that holds no documents "
                                                    "(empty_collection)"},
            429: {"model": ErrorOut, "description": "the key's requests, or a model's rate limit or quota: see "
                                                    "Retry-After"},
            502: {"model": ErrorOut, "description": "the model API refused the server's Gemini key "
                                                    "(invalid_key), failed (provider_error) or cut its answer off "
                                                    "(stream_interrupted)"},
        },
    )
    async def ask(body: AskRequest, request: Request, caller: Asker) -> Response:
        started = time.perf_counter()
        state = services(request)
        chain, generator = state.backend.chain, state.backend.generator
        collection = caller.enter(body.collection or caller.default(state.settings.collection))
        forced = answer_model(body.model, generator, state.settings)
        external = body.session_id or uuid.uuid4().hex[:16]
        session = f"{caller.name}/{external}"
        keeps_history = body.history is None
        if body.history is not None:
            history = [ChatMessage(m.role, m.text) for m in body.history]
        elif body.session_id:
            history = await anyio.to_thread.run_sync(state.conversations.history, session)
        else:
            history = []
        current_session.set(session)  # the global rate limiter queues this session's calls in its own turn
        options = replace(body.options(), model=forced.model, collection=collection)
        steps = ThreadedIterator(noted(chain.stream(body.question, history, session, options), forced.note))

        async def step() -> Event | None:
            """The chain's next event, ended by the shutdown's deadline (ServerDraining: a 503,
            the chain closed and charged once the step under way ends, the client not kept
            waiting for it); on any failure, or uvicorn's cancellation, the chain is closed
            before the error goes on: never left open."""
            try:
                return await steps.next(state.drain)
            except BaseException:
                await steps.close()
                raise

        first = await step()  # rate-limit waits, refusals and the model's first token: before any byte is sent
        if first is None:
            raise RuntimeError("the chain ended without an answer")

        async def finish(record: AnswerRecord) -> AnswerOut:
            observe_answer(state.metrics, record, first_at - started)
            if keeps_history:
                await anyio.to_thread.run_sync(state.conversations.append, session, body.question, record.answer)
            return answer_out(record, external)

        first_at = time.perf_counter()
        if not body.stream:
            event: Event | None = first
            while not isinstance(event, Done):
                event = await step()
                if event is None:
                    raise RuntimeError("the chain ended without an answer")
            await steps.close()  # at its end: nothing to stop
            return JSONResponse((await finish(event.record)).model_dump())
        return EventStream(answer_events(state.metrics, route_path(request.scope), first, steps, finish,
                                         state.drain))

    @app.get("/v1/collections", response_model=list[CollectionOut], responses=REFUSED)
    async def collections(request: Request, caller: Asker) -> list[CollectionOut]:
        listed = await anyio.to_thread.run_sync(list_collections_out, services(request).settings)
        return [c for c in listed if caller.reaches(c.name)]

    @app.get("/v1/collections/{name}/documents", response_model=DocumentsOut,
             responses={**REFUSED, 404: {"model": ErrorOut, "description": NOT_FOUND}})
    async def documents(into: AskInto, request: Request,
                        offset: Annotated[int, Query(ge=0)] = 0,
                        limit: Annotated[int, Query(ge=1, le=MAX_DOCUMENTS_PAGE)] = DOCUMENTS_PAGE) -> DocumentsOut:
        """The collection's files by stored name, with their chunk counts: the names its
        citations give and its removal takes. Sorted by name, `limit` at a time."""
        name = into.name
        stores = services(request).backend.stores
        files = await anyio.to_thread.run_sync(stores.files, name)
        return DocumentsOut(collection=name, total=len(files), offset=offset, limit=limit,
                            documents=[DocumentOut.model_validate(f) for f in files[offset:offset + limit]])

    @app.post("/v1/collections/{name}/documents", response_model=JobOut, status_code=202,
              responses={**REFUSED, 400: BODY_REFUSED[400], 408: BODY_REFUSED[408],
                         413: {"model": ErrorOut, "description": "a file over max_upload_mb, or the request over all "
                                                                 "files' limit"}})
    async def upload(into: IngestInto, files: list[UploadFile], request: Request) -> JobOut:
        """Stores the files under the data dir and queues a job that ingests them."""
        name = into.name
        state = services(request)
        most = state.settings.max_upload_files
        if len(files) > most:
            raise InvalidRequest(f"{len(files)} files in one upload; at most {most} (max_upload_files).", field="files")
        try:  # a type ingest cannot read is refused now, by name, not found skipped in the job's outcome
            names = stored_names([file.filename or "" for file in files])
        except UploadRejected as error:
            raise InvalidRequest(str(error), field="files") from None
        folder = incoming_dir(state.settings, name)  # this upload's own: the job moves its files onto their names
        staged = []
        try:
            for file, stored_name in zip(files, names, strict=True):
                target = staged_file(folder, stored_name).path
                await stage(file, target, state.settings)
                staged.append(str(target))
            job = await anyio.to_thread.run_sync(
                lambda: state.jobs.submit("upload", name, into.caller.name, paths=staged))
        except BaseException:  # the client went away, the disk filled, no queue: nothing queued, nothing kept
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return JobOut.model_validate(job)

    @app.post("/v1/collections/{name}/ingest", response_model=JobOut, status_code=202,
              responses={**REFUSED, **BODY_REFUSED})
    async def ingest_folder(into: AdminInto, body: FolderIngest, request: Request) -> JobOut:
        name = into.name
        state = services(request)
        if not Path(body.path).is_dir():
            raise InvalidRequest(f"{body.path!r} is not a folder on the server.", field="path")
        roots = state.settings.folder_ingest_roots
        real = Path(body.path).resolve()  # a link out of a root is judged by where it leads
        if real.is_relative_to(state.settings.data_dir.resolve()):  # uploads of every collection are kept there
            raise Forbidden(f"{body.path!r} is inside the server's data dir; ingest a folder of documents instead.")
        if roots and not any(real.is_relative_to(root.resolve()) for root in roots):
            raise Forbidden(f"{body.path!r} is outside the folders this server ingests from (folder_ingest_roots: "
                            f"{', '.join(map(str, roots))}).")
        job = await anyio.to_thread.run_sync(
            lambda: state.jobs.submit("folder", name, into.caller.name, paths=[body.path], prune=body.prune))
        return JobOut.model_validate(job)

    @app.delete("/v1/collections/{name}/documents/{source:path}", response_model=JobOut, status_code=202,
                responses={**REFUSED, 404: {"model": ErrorOut, "description": "no such collection, or no such file "
                                                                              "in it"}})
    async def delete_document(into: IngestInto, source: str, request: Request) -> JobOut:
        """Queues the removal of one stored file (its name as citations show it) and its chunks.
        Checked first, without creating anything: queued as asked, an unknown collection was
        created empty by the job, and an unknown file was a 202 and a failed job."""
        name = into.name
        state = services(request)

        def held() -> None:
            if state.backend.stores.open(name).missing_sources([source]):
                raise UnknownDocument(f"Collection {name!r} holds no file {echoed(source)}: GET /v1/collections/{name}"
                                      "/documents lists its files by the names removal takes.")

        await anyio.to_thread.run_sync(held)
        job = await anyio.to_thread.run_sync(
            lambda: state.jobs.submit("remove", name, into.caller.name, sources=[source]))
        return JobOut.model_validate(job)

    @app.get("/v1/jobs/{job_id}", response_model=JobOut,
             responses={200: {"content": {"text/event-stream": {"schema": {"type": "string"}}},
                              "description": "JSON, or with `Accept: text/event-stream` a `progress` event "
                                             "(JobOut) at every change until the job is done or failed, and a "
                                             f"`: keep-alive` comment after {JOB_KEEPALIVE_S:g} s of none"},
                        **REFUSED, 404: {"model": ErrorOut, "description": "no such job, or not the key's"}})
    async def job_status(job_id: str, request: Request, caller: Asker) -> Response:
        state = services(request)
        job = await visible_job(state, job_id, caller)
        if "text/event-stream" not in request.headers.get("accept", ""):
            return JSONResponse(JobOut.model_validate(job).model_dump())
        return EventStream(job_events(state, job))

    @app.get("/v1/sessions/{session_id}/costs", response_model=SessionCosts, responses=REFUSED)
    async def session_costs(session_id: SessionId, request: Request,
                            caller: Asker) -> SessionCosts:
        backend = services(request).backend
        session = f"{caller.name}/{session_id}"

        def read() -> SessionCosts:
            total = backend.ledger.session(session)
            return SessionCosts(
                session_id=session_id,
                total=totals_out(total),
                by_model={m: totals_out(t) for m, t in backend.ledger.models(session).items()},
                budget_remaining_usd=backend.budget.remaining_usd(session),
                note=no_calls_note(session_id, total),
            )

        return await anyio.to_thread.run_sync(read)

    @app.get("/v1/models", response_model=ModelsOut, responses=REFUSED)
    async def models(request: Request, caller: Asker) -> ModelsOut:
        state = services(request)
        provider, settings = state.backend.generator, state.settings
        out = []
        answer_models = dict.fromkeys([provider.flash_model, provider.pro_model])
        # The default collection's embedder: the one that built it, else the one new ones get.
        embedding = (await anyio.to_thread.run_sync(state.backend.embedder_for, settings.collection)).embedding_model
        roles: list[tuple[str, Literal["answer", "embedding"]]] = [(m, "answer") for m in answer_models]
        for name, role in [*roles, (embedding, "embedding")]:
            row = settings.models.get(name)
            limit, price = settings.limit_for(name), row.price_on(date.today()) if row else None
            out.append(ModelOut(name=name, role=role, rpm=limit.rpm, tpm=limit.tpm, rpd=limit.rpd,
                                input_usd_per_mtok=price.input if price else None,
                                output_usd_per_mtok=price.output if price else None))
        reachable = await anyio.to_thread.run_sync(models_check, state) == "ok" if provider.online else None
        return ModelsOut(provider=provider.name, online=provider.online, reachable=reachable, models=out)

    # HEAD too: some load balancers probe with it, and FastAPI, unlike Starlette, answers a
    # GET-only route's HEAD with 405, which took a healthy replica out of rotation.
    @app.get("/healthz", response_model=Health)
    @app.head("/healthz", response_model=Health)
    async def healthz() -> Health:
        return Health(status="ok")

    @app.get("/readyz", response_model=Health, responses={503: {"model": Health}})
    @app.head("/readyz", response_model=Health, responses={503: {"model": Health}})
    async def readyz(request: Request) -> JSONResponse:
        """503 only when a store this replica needs does not answer: Gemini unreachable makes
        every replica "degraded" alike (200), since taking them all out of the load balancer
        would turn a model outage into a full one (the UI, searches, cached answers, costs).
        The `gemrag_model_api_up` gauge and its alert watch the model API instead."""
        checks = await anyio.to_thread.run_sync(readiness, services(request))
        # The data dir matters to every answer only without Redis (the ledger and caches live
        # there then); with Redis, uploads alone need it: degraded, not out of the load balancer.
        degrading = {"models"} | ({"data_dir"} if services(request).settings.redis_url else set())
        stores = all(v == "ok" for k, v in checks.items() if k not in degrading)
        whole = all(v == "ok" for v in checks.values())
        health = Health(status="unavailable" if not stores else "ok" if whole else "degraded",
                        checks=checks)
        return JSONResponse(health.model_dump(), status_code=200 if stores else 503)

    @app.get("/metrics", include_in_schema=False)
    async def metrics(request: Request, authorization: str | None = Header(default=None)) -> Response:
        state = services(request)
        token = state.settings.metrics_token
        if token is not None and not secrets.compare_digest(
                (authorization or "").encode(), f"Bearer {token.get_secret_value()}".encode()):
            raise Unauthorized("GET /metrics needs the metrics token: send 'Authorization: Bearer <metrics_token>'.")
        await anyio.to_thread.run_sync(observe_stores, state)
        return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)


async def answer_events(
    metrics: Metrics,
    route: str,
    first: Event,
    steps: ThreadedIterator[Event],
    finish: Callable[[AnswerRecord], Awaitable[AnswerOut]],
    drain: Drain,
) -> AsyncGenerator[bytes, None]:
    """The SSE body. Closing it early (the client left, or the replica is shutting down:
    `Drain`) closes the chain's stream, which charges what was produced and stops the model
    call. `route`: the errors' metric label."""
    metrics.streams.inc()
    ended = False
    try:
        event: Event | None = first
        while event is not None:
            if isinstance(event, Done):
                yield sse("done", await finish(event.record))
                event = await steps.next()  # nothing left to stop: only the generator's end, never an error
                continue
            yield sse("delta", DeltaEvent(text=event.text))
            event = await steps.next(drain)
        ended = True
    except GemragError as error:
        metrics.errors.labels(error_kind(error), route).inc()
        ended = True
        yield sse("error", ErrorOut(error=error_kind(error), message=remote_message(error)))
    finally:
        await steps.close()  # at once when the shutdown ended it: the step under way may wait a minute for the model
        metrics.streams.dec()
        if not ended:
            metrics.disconnects.inc()


async def stage(file: UploadFile, target: Path, settings: Settings) -> None:
    """Copies one uploaded file to `target`, refusing it past `max_upload_mb` by name: the
    request's own limit (BodyLimit) is `max_upload_files` times that, so two files of 10 MB
    each are taken under a 20 MB limit per file, as the UI takes them."""
    written = 0
    with target.open("wb") as out:
        while chunk := await file.read(1 << 20):
            written += len(chunk)
            if written > settings.max_upload_bytes:
                raise FileTooLarge(f"{target.name}: over the limit of {settings.max_upload_mb:g} MB per file "
                                   "(max_upload_mb).")
            out.write(chunk)


async def visible_job(state: Services, job_id: str, caller: Caller) -> Job:
    job = await anyio.to_thread.run_sync(state.jobs.get, job_id)
    if job is None or (job.owner != caller.name and not caller.may("admin")) or not caller.reaches(job.collection):
        raise UnknownJob(f"No job {echoed(job_id)} (jobs are kept a week after their last change).")
    return await anyio.to_thread.run_sync(state.jobs.settled, job)  # failed if the queue lost it


async def job_events(state: Services, job: Job) -> AsyncGenerator[bytes, None]:
    """Ends once the job is done or failed: failed too if the queue lost it (`Jobs.settled`);
    or as soon as the replica shuts down (`Drain`): a job may run for hours, and its stream held
    the shutdown for all of `drain_s` before it was cut. The client reads on from another."""
    yield sse("progress", JobOut.model_validate(job))
    sent_at = time.monotonic()
    while not job.finished and not state.drain.begun:
        await anyio.sleep(JOB_POLL_S)
        latest = await anyio.to_thread.run_sync(state.jobs.current, job.id)
        if latest is None:
            return
        if latest != job:
            yield sse("progress", JobOut.model_validate(latest))
            sent_at = time.monotonic()
        elif time.monotonic() - sent_at >= JOB_KEEPALIVE_S:
            yield KEEPALIVE
            sent_at = time.monotonic()
        job = latest


def observe_stores(state: Services) -> None:
    """The model API's state, and the job and quota figures read from Redis, at each scrape.
    An unreachable Redis skips the latter (they keep their last values; /readyz names Redis)
    rather than failing the scrape: a 500 made Prometheus drop every metric of the replica,
    errors and latency too, for as long as Redis was down."""
    import redis

    models_check(state)  # gemrag_model_api_up, fresh at every scrape (waiting READY_DEADLINE_S at most)
    readers = [observe_jobs] if state.settings.redis_url and state.settings.chroma_url else []
    if state.settings.online:
        readers.append(observe_quotas)
    for read in readers:
        try:
            read(state)
        except (StoreUnavailable, redis.RedisError) as exc:
            log.warning("/metrics: %s skipped: %s", read.__name__, exc)


def observe_jobs(state: Services) -> None:
    for job_state, n in state.jobs.counts().items():
        state.metrics.jobs.labels(job_state).set(n)
    state.metrics.job_queue.set(state.jobs.queue_depth())
    state.metrics.workers.set(state.jobs.live_workers())


def observe_quotas(state: Services) -> None:
    provider, limiter = state.backend.generator, shared_limiter(state.settings)
    # Flash-Lite too: it rewrites follow-ups, reranks and answers when a budget degrades them.
    models = [provider.flash_model, provider.pro_model, state.settings.lite_model, state.settings.embedding_model]
    for model in dict.fromkeys(models):
        quota = limiter.quota(model)
        state.metrics.ratelimit_queue.labels(model).set(quota.waiting)
        state.metrics.quota_used.labels(model).set(quota.requests_today)
        state.metrics.quota_eta.labels(model).set(quota.exhausted_in_s)


def observe_answer(metrics: Metrics, record: AnswerRecord, ttfb_s: float) -> None:
    metrics.cache.labels("hit" if record.cached else "miss").inc()
    metrics.routes.labels(record.route.kind).inc()
    if record.route.decision:
        metrics.route_decisions.labels(record.route.decision).inc()
    metrics.ttfb.labels(record.route.kind).observe(ttfb_s)
    if not record.cached:
        metrics.ttft.labels(record.route.kind).observe(record.ttft_s)


def list_collections_out(settings: Settings) -> list[CollectionOut]:
    client = chroma_client(settings)
    out = []
    for collection in sorted(client.list_collections(), key=lambda c: c.name):
        version = collection_meta(collection).version
        out.append(CollectionOut(name=collection.name, chunks=collection.count(), version=version))
    return out


def readiness(state: Services) -> dict[str, str]:
    """Each dependency the answers need, checked for real; a failure names what failed."""
    checks: dict[str, str] = {}
    settings = state.settings
    if settings.redis_url:
        import redis

        try:
            redis.Redis.from_url(settings.redis_url, socket_timeout=2).ping()
            checks["redis"] = "ok"
        except redis.RedisError as exc:
            checks["redis"] = f"unreachable: {type(exc).__name__}"
    try:
        chroma_client(settings).heartbeat()
        checks["chroma"] = "ok"
    except Exception as exc:  # chromadb raises many kinds; any of them means not ready
        checks["chroma"] = f"unreachable: {type(exc).__name__}"
    try:  # uploads are staged there, and without Redis the ledger and cache live there too
        settings.path()
        checks["data_dir"] = "ok"
    except DataDirUnwritable:  # a read-only mount answered 200 "ok" while uploads and answers failed
        checks["data_dir"] = "not writable"
    checks["models"] = models_check(state)
    return checks


def models_check(state: Services) -> str:
    """The model API's state, one answer for /readyz (`models`) and /v1/models (`reachable`),
    so the two never disagree: "ok" if it answered within READY_CACHE_S, else it is asked now
    (countTokens: free, and on its own quota). Offline there is no model API: "ok"."""
    provider = state.backend.generator
    if not provider.online:
        state.metrics.model_api_up.set(1)  # nothing to reach: answers need no model API
        return "ok"
    if time.monotonic() - state.ready_at <= READY_CACHE_S:
        return "ok"
    try:
        provider.count_tokens(Prompt.of("ping", deadline_s=READY_DEADLINE_S))
    except GemragError as exc:
        state.metrics.model_api_up.set(0)
        return f"unreachable: {error_kind(exc)}"
    state.metrics.model_api_up.set(1)
    state.ready_at = time.monotonic()
    return "ok"


def route_path(scope: Scope, routes: Sequence[BaseRoute] = ()) -> str:
    """The route template a request is counted under, never its raw path (paths are
    unbounded): the route it was routed to, or for one refused before routing (a body over
    the limit, or stalled), the one of `routes` its path matches; else "unmatched"."""
    route = scope.get("route") or next((r for r in routes if r.matches(scope)[0] is Match.FULL), None)
    return ROUTE_CONVERTER.sub("}", getattr(route, "path", "unmatched"))  # as the API's docs write it: {source}


def mounted_path(scope: Scope, routes: Sequence[BaseRoute]) -> str | None:
    """The path of the app mounted among `routes` (the UI, at /ui) that a request as sent is
    for: all of its requests are counted under it. Inside, Gradio routes them by its own
    templates ("/config", "/gradio_api/queue/join", its "/"), which are not the API's, change
    with Gradio's version and would share names with the API's."""
    return next((r.path for r in routes if isinstance(r, Mount) and r.matches(scope)[0] is Match.FULL), None)


class Instrumented:
    """ASGI middleware: request counts and latency by route template (streams: to the last
    byte), and the request id that tags every log line of the request (the caller's
    X-Request-ID when it is a plain token, else a new one; echoed in the response), each
    under its route_path (`routes`: the app's), or its mounted_path."""

    def __init__(self, app: ASGIApp, metrics: Metrics, routes: Sequence[BaseRoute] = ()) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        given = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        rid = given if _REQUEST_ID.fullmatch(given) else new_request_id()

        answering = False  # the response has begun: too late for an error of its own

        async def sending(message: Message) -> None:
            nonlocal status, answering
            if message["type"] == "http.response.start":
                status, answering = message["status"], True
                message = {**message, "headers": [*message.get("headers", []), (b"x-request-id", rid.encode())]}
            await send(message)

        def path() -> str:
            return mounted_path(asked, self.routes) or route_path(scope if "route" in scope else asked, self.routes)

        asked = {**scope}  # as sent: a mount rewrites the scope's paths on the way in
        with bound(rid):
            try:
                await self.app(scope, receive, sending)
            except Exception:
                if answering:
                    raise
                # A fault of ours, not a refusal: logged with the request id, counted as an
                # error, and answered in the shape of every other error, where the bare
                # "Internal Server Error" in text/plain told a client nothing and never
                # reached gemrag_errors_total.
                where = path()
                log.exception("%s %s failed", scope["method"], where)
                self.metrics.errors.labels("internal_error", where).inc()
                body = ErrorOut(error="internal_error", message=f"The server failed on this request; its log "
                                f"holds the error under request id {rid}.")
                await JSONResponse(body.model_dump(), status_code=500)(scope, receive, sending)
            finally:
                elapsed, where = time.perf_counter() - started, path()
                self.metrics.requests.labels(where, scope["method"], str(status)).inc()
                self.metrics.latency.labels(where, scope["method"]).observe(elapsed)
                log.info("%s %s %d", scope["method"], where, status,
                         extra={"status": status, "duration_ms": round(elapsed * 1000, 1)})
