"""The problem+json → exception mapping: by slug first, by status family as a fallback."""

from __future__ import annotations

import pytest

import client_sdk
from client_sdk.errors import (
    PROBLEM_BASE,
    ApiError,
    AuthenticationError,
    ClaimInvalid,
    ConsentExhausted,
    ConsentExpired,
    ConsentUnusable,
    ConsentWithdrawn,
    EntryNotClaimed,
    EntryWindowClosed,
    IdempotencyConflict,
    InvalidClient,
    InvalidElement,
    InvalidRequest,
    InvalidToken,
    KeyMismatch,
    KeyRotated,
    MouInactive,
    NotFound,
    PermissionDenied,
    PolicyViolation,
    QuotaExceeded,
    SealedKeysInvalid,
    ServerError,
    ServiceUnavailable,
    WrongElementCount,
    error_from_response,
)


def problem(slug: str, status: int, **extra: object) -> dict[str, object]:
    return {"type": PROBLEM_BASE + slug, "title": "t", "status": status, "detail": "d", **extra}


@pytest.mark.parametrize(
    ("slug", "status", "cls"),
    [
        ("invalid-client", 401, InvalidClient),
        ("invalid-token", 401, InvalidToken),
        ("unauthenticated", 401, AuthenticationError),
        ("permission-denied", 403, PermissionDenied),
        ("mou-inactive", 403, MouInactive),
        ("not-found", 404, NotFound),
        ("consent-expired", 409, ConsentExpired),
        ("consent-withdrawn", 409, ConsentWithdrawn),
        ("consent-exhausted", 409, ConsentExhausted),
        ("idempotency-conflict", 409, IdempotencyConflict),
        ("key-mismatch", 409, KeyMismatch),
        ("key-rotated", 409, KeyRotated),
        ("entry-window-closed", 409, EntryWindowClosed),
        ("wrong-element-count", 422, WrongElementCount),
        ("claim-invalid", 422, ClaimInvalid),
        ("entry-not-claimed", 422, EntryNotClaimed),
        ("sealed-keys-invalid", 422, SealedKeysInvalid),
        ("invalid-request", 422, InvalidRequest),
        ("policy-violation", 422, PolicyViolation),
        ("invalid-element", 422, InvalidElement),
        ("quota-exceeded", 429, QuotaExceeded),
        ("internal-error", 500, ServerError),
    ],
)
def test_problem_type_maps_to_its_exception_class(slug: str, status: int, cls: type) -> None:
    exc = error_from_response(status, problem(slug, status))
    assert type(exc) is cls
    assert exc.status == status and exc.problem_slug == slug and exc.detail == "d"


def test_consent_refusals_share_a_catchable_parent() -> None:
    for cls in (ConsentExpired, ConsentWithdrawn, ConsentExhausted):
        assert issubclass(cls, ConsentUnusable)


def test_unknown_slug_falls_back_to_its_status_family() -> None:
    exc = error_from_response(409, problem("disclosure-closed", 409))
    assert type(exc).__name__ == "Conflict"
    assert exc.problem_slug == "disclosure-closed"


def test_slug_with_a_status_of_another_family_is_not_trusted() -> None:
    # "consent-expired" on a 500 is a broken answer: the status decides.
    exc = error_from_response(500, problem("consent-expired", 500))
    assert type(exc) is ServerError


def test_answer_without_problem_body_still_maps_by_status() -> None:
    assert type(error_from_response(503, None)) is ServiceUnavailable
    assert type(error_from_response(502, "<html>bad gateway</html>")) is ServerError
    assert type(error_from_response(418, None)) is ApiError


def test_extra_members_are_kept() -> None:
    exc = error_from_response(422, problem("policy-violation", 422, rule="retention"))
    assert isinstance(exc, PolicyViolation) and exc.rule == "retention"
    exc2 = error_from_response(422, problem("invalid-element", 422, index=3))
    assert isinstance(exc2, InvalidElement) and exc2.index == 3


def test_retry_after_header_fills_retry_after_seconds() -> None:
    exc = error_from_response(429, problem("quota-exceeded", 429), retry_after="120")
    assert isinstance(exc, QuotaExceeded) and exc.retry_after_seconds == 120


def test_every_exception_of_the_tree_is_documented_in_the_module_docstring() -> None:
    doc = client_sdk.__doc__ or ""
    for name in client_sdk.__all__:
        obj = getattr(client_sdk, name)
        if isinstance(obj, type) and issubclass(obj, client_sdk.RefcheckError):
            assert name in doc, name


def server_problem_slugs() -> dict[str, int]:
    """Every problem slug the server can answer, with its status: the `slug` of each domain
    error (server.errors.DomainError and its subclasses in every server module), the HTTP-level
    slugs of server.problems, and `internal-error`."""
    import importlib
    import pkgutil

    import server
    from server.errors import DomainError
    from server.problems import _HTTP_SLUGS

    for module in pkgutil.walk_packages(server.__path__, "server."):
        if not module.name.startswith("server.migrations"):
            importlib.import_module(module.name)
    found = {"internal-error": 500} | {slug: status for status, slug in _HTTP_SLUGS.items()}
    pending: list[type[DomainError]] = [DomainError]
    while pending:
        cls = pending.pop()
        found[cls.slug] = cls.status
        pending.extend(cls.__subclasses__())
    return found


def unmapped(slugs: dict[str, int]) -> set[str]:
    """The slugs without an SDK exception class of their own (`ApiError.slug`)."""
    return {
        slug
        for slug, status in slugs.items()
        if error_from_response(status, problem(slug, status)).slug != slug
    }


def test_every_server_problem_slug_has_an_sdk_exception_class() -> None:
    assert unmapped(server_problem_slugs()) == set()


def test_a_slug_without_an_sdk_class_is_reported() -> None:
    assert unmapped({"consent-expired": 409, "no-such-slug-anywhere": 409}) == {
        "no-such-slug-anywhere"
    }
