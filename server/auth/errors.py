"""Authentication errors. All of them look alike to the caller on purpose: telling an attacker
*which* check failed (unknown key vs bad signature vs replay) helps them probe."""

from __future__ import annotations

from typing import Any

from server.errors import DomainError, Unauthenticated


class InvalidToken(Unauthenticated):
    slug = "invalid-token"
    title = "The access token is not valid"


class InvalidClientAssertion(Unauthenticated):
    slug = "invalid-client"
    title = "Client authentication failed"

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        # RFC 6749 §5.2 error code, so generic OAuth clients understand the answer too.
        super().__init__(detail, error="invalid_client", **extra)


class UnsupportedGrantType(DomainError):
    slug, title, status = "unsupported-grant-type", "Only client_credentials is supported", 400

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        super().__init__(detail, error="unsupported_grant_type", **extra)
