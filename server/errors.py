"""Domain errors shared by every subpackage, and the base every domain error derives from.

Services raise these; they never know about HTTP. `server.problems` is the one place that turns
them into RFC 9457 problem+json responses. `type` values are stable: clients (the SDK) map them to
their own exception classes, so renaming one is a breaking API change.
"""

from __future__ import annotations

from typing import Any, ClassVar

PROBLEM_BASE = "urn:refcheck:problem:"


class DomainError(Exception):
    """Base of every error a client may see. Messages must never contain an identifier."""

    slug: ClassVar[str] = "internal-error"
    title: ClassVar[str] = "Internal error"
    status: ClassVar[int] = 500

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.extra = extra
        self.headers: dict[str, str] = {}

    @classmethod
    def problem_type(cls) -> str:
        return PROBLEM_BASE + cls.slug


class InvalidRequest(DomainError):
    slug, title, status = "invalid-request", "The request is not valid", 422


class Unauthenticated(DomainError):
    slug, title, status = "unauthenticated", "Authentication required or failed", 401

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        super().__init__(detail, **extra)
        self.headers = {"WWW-Authenticate": 'Bearer realm="refcheck"'}


class PermissionDenied(DomainError):
    slug, title, status = "permission-denied", "Your role does not allow this", 403


class NotFound(DomainError):
    # Foreign-tenant ids answer exactly like missing ones: existence is itself information.
    slug, title, status = "not-found", "No such resource", 404


class Conflict(DomainError):
    slug, title, status = "conflict", "The request conflicts with the current state", 409


class PolicyViolation(DomainError):
    slug, title, status = "policy-violation", "The network policy does not allow this", 422

    def __init__(self, detail: str, *, rule: str, **extra: Any) -> None:
        super().__init__(detail, rule=rule, **extra)


class MouInactive(DomainError):
    slug, title, status = "mou-inactive", "Your organisation's MoU does not allow this", 403


class QuotaExceeded(DomainError):
    slug, title, status = "quota-exceeded", "Quota exceeded", 429

    def __init__(self, detail: str, *, retry_after_seconds: int, **extra: Any) -> None:
        super().__init__(detail, retry_after_seconds=retry_after_seconds, **extra)
        self.headers = {"Retry-After": str(max(1, retry_after_seconds))}


class ServerBusy(DomainError):
    """503: the server did not act on the request, because it is at capacity (or the database
    did not answer in time). Retried by the SDK after `Retry-After` seconds."""

    slug, title, status = "busy", "The server is busy; retry after the time given", 503

    def __init__(
        self, detail: str | None = None, *, retry_after_seconds: int, **extra: Any
    ) -> None:
        super().__init__(detail, retry_after_seconds=max(1, retry_after_seconds), **extra)
        self.headers = {"Retry-After": str(max(1, retry_after_seconds))}


class FairShareExceeded(DomainError):
    """429: the caller's organisation already has its share of the server's capacity in use;
    other organisations' requests still get in. Retried by the SDK after `Retry-After`."""

    slug, title, status = (
        "fair-share-exceeded",
        "Your organisation is using its share of the server; retry after the time given",
        429,
    )

    def __init__(
        self, detail: str | None = None, *, retry_after_seconds: int, **extra: Any
    ) -> None:
        super().__init__(detail, retry_after_seconds=max(1, retry_after_seconds), **extra)
        self.headers = {"Retry-After": str(max(1, retry_after_seconds))}
