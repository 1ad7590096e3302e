"""The one place where errors become HTTP: RFC 9457 problem+json with stable `type` URIs.

Validation errors are reported by location and reason only; pydantic's `input` is dropped because
it would echo what the caller sent, which may be a personal identifier, into responses and logs.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.errors import PROBLEM_BASE, DomainError

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


async def _domain_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    return problem(
        exc.status, exc.slug, exc.title, exc.detail, request, exc.headers or None, **exc.extra
    )


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": [str(p) for p in err.get("loc", ())], "msg": str(err.get("msg", "invalid"))}
        for err in exc.errors()
    ]
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


def install(app: FastAPI, *, max_body_bytes: int | None = None) -> None:
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_middleware(ContainUnexpectedErrors)
    if max_body_bytes is not None:
        # Added last, so it is the outermost layer: nothing inside reads past the limit.
        app.add_middleware(LimitRequestBody, max_bytes=max_body_bytes)
