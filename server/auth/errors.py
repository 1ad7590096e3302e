"""Authentication errors. All of them look alike to the caller on purpose: telling an attacker
*which* check failed (unknown key vs bad signature vs replay) helps them probe."""

from __future__ import annotations

from server.errors import Unauthenticated


class InvalidToken(Unauthenticated):
    slug = "invalid-token"
    title = "The access token is not valid"


class InvalidClientAssertion(Unauthenticated):
    slug = "invalid-client"
    title = "Client authentication failed"
