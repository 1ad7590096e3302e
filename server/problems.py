"""The one place where errors become HTTP: RFC 9457 problem+json with stable `type` URIs.

Validation errors are reported by location and reason only; pydantic's `input` is dropped because
it would echo what the caller sent, which may be a personal identifier, into responses and logs.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterable
from typing import Any

import fastapi.routing
from fastapi import FastAPI, Request, params
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.errors import PROBLEM_BASE, DomainError, ServerBusy

log = logging.getLogger("refcheck.server")

PROBLEM_JSON = "application/problem+json"

_HTTP_SLUGS = {
    400: "bad-request",
    401: "unauthenticated",
    403: "permission-denied",
    404: "not-found",
    405: "method-not-allowed",
    406: "not-acceptable",
    409: "conflict",
    413: "payload-too-large",
    415: "unsupported-media-type",
    422: "invalid-request",
    429: "quota-exceeded",
    431: "headers-too-large",
}


def problem(
    status: int,
    slug: str,
    title: str,
    detail: str,
    request: Request,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + slug,
        "title": title,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
    }
    body.update(extra)
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


def error_response(exc: DomainError, path: str) -> JSONResponse:
    """`exc` as problem+json, where there is no `Request` (an ASGI middleware)."""
    body: dict[str, Any] = {
        "type": exc.problem_type(),
        "title": exc.title,
        "status": exc.status,
        "detail": exc.detail,
        "instance": path,
        **exc.extra,
    }
    return JSONResponse(
        body, status_code=exc.status, headers=exc.headers or None, media_type=PROBLEM_JSON
    )


async def _domain_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    return problem(
        exc.status, exc.slug, exc.title, exc.detail, request, exc.headers or None, **exc.extra
    )


#: SQLSTATEs after which PostgreSQL has rolled the transaction back and nothing was done:
#: statement timeout or cancel, lock timeout, deadlock, serialization failure, too many clients.
_POSTGRES_BUSY = frozenset({"57014", "55P03", "40P01", "40001", "53300"})


def database_busy(exc: BaseException) -> bool:
    """Whether `exc` means "the database did not answer in time" rather than a fault: no pooled
    connection free within the pool timeout, SQLite's write lock not had within the busy
    timeout, or one of `_POSTGRES_BUSY`. Either way the transaction was rolled back."""
    if isinstance(exc, sa_exc.TimeoutError):
        return True
    if not isinstance(exc, sa_exc.OperationalError):
        return False
    orig = exc.orig
    if isinstance(orig, sqlite3.OperationalError):
        name = getattr(orig, "sqlite_errorname", "")
        return name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or str(orig).startswith(
            ("database is locked", "database table is locked")
        )
    return getattr(orig, "sqlstate", None) in _POSTGRES_BUSY


#: What a request that met a busy database is told to wait: the database frees up in well
#: under a second once the burst that filled it is shed.
DATABASE_BUSY_RETRY_AFTER = 1


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    if not database_busy(exc):
        raise exc  # a fault, not load: ContainUnexpectedErrors answers an opaque 500
    log.warning(
        "database busy on %s %s: %s",
        request.method,
        _route_template(request.scope),
        type(exc).__name__,
    )
    return await _domain_error(
        request,
        ServerBusy(
            "the database did not answer in time", retry_after_seconds=DATABASE_BUSY_RETRY_AFTER
        ),
    )


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def _is_json(media_type: str) -> bool:
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


def _expects_json_body(request: Request) -> bool:
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or route.body_field is None:
        return False
    return not any(isinstance(p.field_info, params.Form) for p in route.dependant.body_params)


#: Where a value came from, which a person does not need in the field's name.
_LOCATIONS = {"body", "query", "path", "header", "cookie"}
#: Pydantic's messages for the commonest mistakes, said the way a person would say them.
_MESSAGES = {
    "missing": "required",
    "extra_forbidden": "not an accepted field",
    "date_parsing": "not a real calendar date (YYYY-MM-DD)",
    "date_from_datetime_parsing": "not a real calendar date (YYYY-MM-DD)",
    "date_from_datetime_inexact": "not a real calendar date (YYYY-MM-DD)",
    "date_type": "not a real calendar date (YYYY-MM-DD)",
}


def field_error(err: Any) -> dict[str, Any]:
    """One validation error as `{"field", "message", "loc"}`: `field` the dotted name without
    where it came from (`person.date_of_birth`), `message` for a person, `loc` pydantic's path
    for programs. Never the value that was sent."""
    loc = [str(p) for p in err.get("loc", ())]
    path = loc[1:] if loc and loc[0] in _LOCATIONS else loc
    message = _MESSAGES.get(str(err.get("type")), str(err.get("msg", "invalid")))
    message = message.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    return {"field": ".".join(path) or "(request)", "message": message, "loc": loc}


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    media_type = _media_type(request)
    if media_type and not _is_json(media_type) and _expects_json_body(request):
        # FastAPI hands a body it cannot read as JSON to validation as raw bytes, which would
        # answer 422 with a confusing "not a valid dict"; the body's type is what is wrong.
        return problem(
            415,
            "unsupported-media-type",
            "The request body must be JSON",
            "send the body as application/json",
            request,
        )
    errors = [field_error(err) for err in exc.errors()]
    return problem(
        422,
        "invalid-request",
        "The request is not valid",
        "One or more fields failed validation",
        request,
        errors=errors,
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    slug = _HTTP_SLUGS.get(exc.status_code, "http-error")
    detail = exc.detail if isinstance(exc.detail, str) else "HTTP error"
    return problem(exc.status_code, slug, detail, detail, request, dict(exc.headers or {}) or None)


def _route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "(no route)"


class ContainUnexpectedErrors:
    """Turn any unhandled exception into an opaque 500 problem and log only its class.

    Starlette's own handler for `Exception` answers 500 but then re-raises, and the server
    logs the traceback with the exception's message: a database error's message holds the
    SQL parameters, which may be a pseudonym or an identifier. Caught here, nothing of it
    reaches a log or a response.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:  # noqa: BLE001 - the last line of defence, by design
            log.error(
                "unhandled %s on %s %s",
                type(exc).__name__,
                scope.get("method", "?"),
                _route_template(scope),
            )
            if started:
                return  # the status line is sent; closing the stream is all that is left
            body = {
                "type": PROBLEM_BASE + "internal-error",
                "title": "Internal error",
                "status": 500,
                "detail": "Internal error",
                "instance": scope.get("path", ""),
            }
            response = JSONResponse(body, status_code=500, media_type=PROBLEM_JSON)
            await response(scope, receive, send)


class _BodyTooLarge(StarletteHTTPException):
    def __init__(self) -> None:
        super().__init__(status_code=413, detail="The request body is too large")


def _too_large_body(scope: Scope, limit: int) -> JSONResponse:
    body = {
        "type": PROBLEM_BASE + "payload-too-large",
        "title": "The request body is too large",
        "status": 413,
        "detail": f"request bodies are limited to {limit} bytes",
        "instance": scope.get("path", ""),
    }
    return JSONResponse(
        body, status_code=413, media_type=PROBLEM_JSON, headers={"Connection": "close"}
    )


class LimitRequestBody:
    """Refuse (413 `payload-too-large`) a request body larger than `max_bytes`.

    FastAPI reads and parses the whole body before any dependency runs, authentication
    included, so without this anybody could make the server buffer and parse as much as they
    send. A declared `Content-Length` over the limit is refused before the body is read; a body
    sent without one (chunked) is cut off as soon as it passes the limit, and whatever the app
    would have answered to the truncated body is replaced by the 413.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _too_large_body(scope, limit)(scope, receive, send)
            return
        received = 0
        exceeded = False
        answered = False

        async def limited_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    raise _BodyTooLarge()
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal answered
            if exceeded:
                # The app answered the cut-off body (400, 422 or 500): send the 413 instead.
                if not answered:
                    answered = True
                    await _too_large_body(scope, limit)(scope, receive, send)
                return
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not exceeded:
                raise
        if exceeded and not answered:
            answered = True
            await _too_large_body(scope, limit)(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class LimitRequestHeaders:
    """Refuse (431 `headers-too-large`, problem+json) a request whose headers add up to more
    than `max_bytes`, before anything reads them.

    uvicorn itself refuses a request head over its own buffer limit (16 KiB by default) with a
    plain-text 400 before the app sees it; below that, this is what answers, in the same format
    as every other refusal. Headers are the one part of a request every layer reads (the token
    check, the body limit, logging), so a caller must not be able to make them large.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            size = sum(len(k) + len(v) + 4 for k, v in scope.get("headers", ()))
            if size > self.max_bytes:
                body = {
                    "type": PROBLEM_BASE + "headers-too-large",
                    "title": "The request headers are too large",
                    "status": 431,
                    "detail": f"request headers are limited to {self.max_bytes} bytes",
                    "instance": scope.get("path", ""),
                }
                response = JSONResponse(
                    body, status_code=431, media_type=PROBLEM_JSON, headers={"Connection": "close"}
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def install(
    app: FastAPI, *, max_body_bytes: int | None = None, max_header_bytes: int | None = None
) -> None:
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(sa_exc.TimeoutError, _database_error)
    app.add_exception_handler(sa_exc.OperationalError, _database_error)
    app.add_middleware(ContainUnexpectedErrors)
    if max_body_bytes is not None:
        # Added late, so it is an outer layer: nothing inside reads past the limit.
        app.add_middleware(LimitRequestBody, max_bytes=max_body_bytes)
    if max_header_bytes is not None:
        app.add_middleware(LimitRequestHeaders, max_bytes=max_header_bytes)


# --- the API description: every error answer is problem+json -------------------------------

PROBLEM_SCHEMA_NAME = "Problem"
PROBLEM_SCHEMA: dict[str, Any] = {
    "title": PROBLEM_SCHEMA_NAME,
    "description": "RFC 9457 problem details. `type` is `urn:refcheck:problem:<slug>` "
    "(docs/api.md, Problem types); members beyond the five standard ones depend on the type.",
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
    },
    "additionalProperties": True,
}
_RETRY_AFTER_HEADER = {
    "Retry-After": {
        "description": "Seconds to wait before sending the request again.",
        "schema": {"type": "integer", "minimum": 1},
    }
}
_DESCRIPTIONS = {
    "401": "No valid access token (`invalid-token`, `unauthenticated`).",
    "403": "The caller's roles or its organisation's standing do not allow this.",
    "404": "No such resource, or not one the caller may see.",
    "413": "The request body is over the limit (`payload-too-large`).",
    "415": "The request body is not JSON (`unsupported-media-type`).",
    "422": "The request is not valid (`invalid-request`, with `errors`), or a policy refuses it.",
    "429": "A quota is used up (`quota-exceeded`) or the organisation is over its share of the "
    "server (`fair-share-exceeded`); `Retry-After` says when to try again.",
    "431": "The request headers are over the limit (`headers-too-large`).",
    "4XX": "Any other refusal, as problem+json (docs/api.md lists every type).",
    "500": "An unexpected failure (`internal-error`); nothing of it is disclosed.",
    "503": "The server is at capacity or the database did not answer in time (`busy`); the "
    "request was not acted on; `Retry-After` says when to try again.",
}


def _problem_response(status: str) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": _DESCRIPTIONS[status],
        "content": {
            PROBLEM_JSON: {"schema": {"$ref": f"#/components/schemas/{PROBLEM_SCHEMA_NAME}"}}
        },
    }
    if status in ("429", "503"):
        response["headers"] = _RETRY_AFTER_HEADER
    return response


def api_routes(routes: Iterable[BaseRoute]) -> list[tuple[str, set[str], APIRoute]]:
    """(full path, methods, route) of every API route, through included routers too: recent
    FastAPI includes routers lazily (`app.routes` holds wrappers) and flattens them with its
    public `iter_route_contexts`; older versions list `APIRoute`s directly."""
    iter_contexts = getattr(fastapi.routing, "iter_route_contexts", None)
    if iter_contexts is None:
        return [(r.path, set(r.methods or ()), r) for r in routes if isinstance(r, APIRoute)]
    return [
        (c.path, set(c.methods or ()), c.original_route)
        for c in iter_contexts(list(routes))
        if isinstance(c.original_route, APIRoute)
    ]


def document_problems(
    openapi: dict[str, Any], routes: Iterable[BaseRoute], *, admitted: bool = True
) -> dict[str, Any]:
    """Declare every operation's error answers as `application/problem+json` in the `openapi`
    document FastAPI generated (which declares only a JSON 422 of its own shape), in place.

    Every operation may answer 4XX and 500; one that takes a token 401 and 403, one with a
    path parameter 404, one with a body 413 and 415 (422 for any parameter or body), and, when
    `admitted` (everything but the probes and this description), 429 and 503 with `Retry-After`.
    """
    components = openapi.setdefault("components", {}).setdefault("schemas", {})
    components[PROBLEM_SCHEMA_NAME] = PROBLEM_SCHEMA
    # FastAPI's own shapes of the 422 it never sends (ours is a problem).
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    by_path = {
        (path, method.lower()): route
        for path, methods, route in api_routes(routes)
        for method in methods
    }
    for path, operations in openapi.get("paths", {}).items():
        for method, operation in operations.items():
            route = by_path.get((path, method))
            if route is None:
                continue
            statuses = ["4XX", "500"]
            if operation.get("security"):
                statuses += ["401", "403"]
            params = operation.get("parameters", [])
            if any(p.get("in") == "path" for p in params):
                statuses.append("404")
            if params or route.body_field is not None:
                statuses.append("422")
            if route.body_field is not None:
                statuses += ["413", "415"]
            statuses.append("431")
            if admitted and path not in ("/healthz", "/readyz"):
                statuses += ["429", "503"]
            responses = operation.setdefault("responses", {})
            for status in statuses:
                responses[status] = _problem_response(status)
    return openapi
