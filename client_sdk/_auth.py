"""Client authentication without I/O: the signed assertion, the token request, the token cache.

RFC 7523 `private_key_jwt`: the SDK proves possession of the principal's Ed25519 auth key by
signing a short-lived JWT, and exchanges it for an access token. No shared secret exists that a
stolen server database could replay.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt

from client_sdk.credentials import Credentials
from client_sdk.errors import InvalidResponse

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
TOKEN_PATH = "/v1/oauth/token"
#: docs/api.md caps an assertion at 300 s; a short life limits what a captured one is worth.
ASSERTION_LIFETIME = 120


def sign_assertion(creds: Credentials, *, now: float | None = None) -> str:
    """The client assertion: EdDSA JWT with iss = sub = client_id, aud = the server's issuer.

    `jti` is random so the server can refuse a replayed assertion.
    """
    issued = int(now if now is not None else time.time())
    claims = {
        "iss": creds.client_id,
        "sub": creds.client_id,
        "aud": creds.issuer,
        "iat": issued,
        "exp": issued + ASSERTION_LIFETIME,
        "jti": str(uuid.uuid4()),
    }
    return jwt.encode(claims, creds.auth_key, algorithm="EdDSA", headers={"typ": "JWT"})


def token_request_form(creds: Credentials, *, now: float | None = None) -> dict[str, str]:
    return {
        "grant_type": "client_credentials",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": sign_assertion(creds, now=now),
    }


@dataclass(frozen=True)
class AccessToken:
    value: str
    issued_at: float
    expires_at: float

    def fresh(self, now: float, margin: float) -> bool:
        # Never more than half the token's life: a server with 60 s tokens would otherwise make
        # a 30 s margin renew on every other request.
        margin = min(margin, (self.expires_at - self.issued_at) / 2)
        return now < self.expires_at - margin


def parse_token_response(body: Any, *, now: float) -> AccessToken:
    if not isinstance(body, dict):
        raise InvalidResponse("token answer is not a JSON object")
    token = body.get("access_token")
    expires_in = body.get("expires_in")
    token_type = body.get("token_type")
    if not isinstance(token, str) or not token:
        raise InvalidResponse("token answer has no access_token")
    if not isinstance(token_type, str) or token_type.lower() != "bearer":
        raise InvalidResponse("token answer is not a bearer token")
    if not isinstance(expires_in, int | float) or expires_in <= 0:
        raise InvalidResponse("token answer has no positive expires_in")
    return AccessToken(value=token, issued_at=now, expires_at=now + float(expires_in))


class TokenCache:
    """Holds the current access token and says when to renew it.

    Renewal happens `margin` seconds before expiry (at most half the token's life), so a request
    is not sent with a token that expires in flight and comes back 401. The clock is injectable
    for tests. Thread-safe for reads and swaps; the drivers serialise renewal themselves.
    """

    def __init__(self, *, margin: float = 30.0, clock: Callable[[], float] = time.time) -> None:
        self.margin = margin
        self.clock = clock
        self._token: AccessToken | None = None
        self._lock = threading.Lock()

    def current(self) -> str | None:
        with self._lock:
            token = self._token
        if token is None:
            return None
        return token.value if token.fresh(self.clock(), self.margin) else None

    def store(self, body: Any) -> str:
        token = parse_token_response(body, now=self.clock())
        with self._lock:
            self._token = token
        return token.value

    def invalidate(self, value: str | None = None) -> None:
        """Forget the token (only if it is still `value`, when given: another thread may have
        renewed it already)."""
        with self._lock:
            if value is None or (self._token is not None and self._token.value == value):
                self._token = None
