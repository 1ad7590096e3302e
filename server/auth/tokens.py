"""Access tokens: short-lived EdDSA JWTs the server issues and verifies.

pyjwt is always called with an explicit `algorithms=["EdDSA"]`: accepting the header's choice would
let `alg: none` or an HS256 token "signed" with our public key through (the classic key-confusion
attack). `iss`, `aud`, `iat`, `exp`, `sub` and `jti` are required claims.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from server.auth.errors import InvalidToken
from server.auth.permissions import Permission, Role, permissions_for
from server.keys import ServerKeys
from server.settings import Settings


@dataclass(frozen=True)
class Caller:
    """The authenticated principal of a request, after its token was verified."""

    principal_id: str
    org_id: str
    roles: frozenset[Role]

    @property
    def permissions(self) -> frozenset[Permission]:
        return permissions_for(self.roles)

    def has(self, permission: Permission) -> bool:
        return permission in self.permissions


def issue_access_token(
    *, settings: Settings, keys: ServerKeys, caller: Caller, now: datetime
) -> tuple[str, int]:
    ttl = settings.access_token_ttl_seconds
    claims = {
        "iss": settings.issuer,
        "aud": settings.token_audience,
        "sub": caller.principal_id,
        "org": caller.org_id,
        "roles": sorted(caller.roles),
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(seconds=ttl)).timestamp()),
        "jti": str(uuid.uuid4()),
    }
    token = jwt.encode(
        claims, keys.token_key, algorithm="EdDSA", headers={"kid": keys.token_key_id}
    )
    return token, ttl


#: Longer than any token this server issues; a longer one is refused before it is parsed.
MAX_TOKEN_LENGTH = 4096


@functools.lru_cache(maxsize=4096)
def _signed_claims(
    token: str, *, key_id: str, public_key: bytes, audience: str, issuer: str
) -> Mapping[str, Any]:
    """The claims of `token` if its signature, issuer and audience check out (else InvalidToken).

    Cached per token: a client sends the same token with every request until it expires, and the
    answer for a given token and key never changes, while checking it costs an Ed25519
    verification. Only tokens that passed are cached (a raising call stores nothing); the
    times are checked per request by the caller, against the app clock.
    """
    try:
        header = jwt.get_unverified_header(token)
        # A token naming another key was not signed by our current key; refusing it early keeps
        # the error uniform and leaves room for key rotation (several `kid`s in the JWKS).
        if header.get("kid") != key_id:
            raise InvalidToken("access token signed by an unknown key")
        claims = jwt.decode(
            token,
            Ed25519PublicKey.from_public_bytes(public_key),
            algorithms=["EdDSA"],
            # `aud` is `<issuer>/api`, never the bare issuer that client assertions name, so a
            # client assertion can never pass as an access token or the other way round.
            audience=audience,
            issuer=issuer,
            options={
                "require": ["iss", "aud", "iat", "exp", "sub", "jti"],
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
            },
        )
    except jwt.PyJWTError as exc:
        raise InvalidToken("access token rejected") from exc
    return MappingProxyType(claims)


def verify_access_token(
    token: str, *, settings: Settings, keys: ServerKeys, now: datetime
) -> Caller:
    """Check signature, issuer, audience and expiry; return who the token was issued to.

    The roles in the returned `Caller` are those of the token; `server.auth.deps` replaces them
    with the principal's current roles so a change takes effect before the token expires.
    """
    if len(token) > MAX_TOKEN_LENGTH:
        raise InvalidToken("access token rejected")
    # The current key and, for the overlap after a rotation, the previous one (JWKS lists both).
    try:
        kid = jwt.get_unverified_header(token).get("kid")
    except jwt.PyJWTError as exc:
        raise InvalidToken("access token rejected") from exc
    public_key = keys.token_verifying_key(kid) if isinstance(kid, str) else None
    if public_key is None:
        raise InvalidToken("access token signed by an unknown key")
    claims = _signed_claims(
        token,
        key_id=kid,
        public_key=public_key,
        audience=settings.token_audience,
        issuer=settings.issuer,
    )
    # Expiry is checked against the app clock (not the wall clock) so tests can move time.
    ts = int(now.timestamp())
    exp, iat = claims["exp"], claims["iat"]
    if not isinstance(exp, int) or not isinstance(iat, int):
        raise InvalidToken("access token times are not integers")
    if exp <= ts:
        raise InvalidToken("access token expired")
    if iat > ts + 30:
        raise InvalidToken("access token issued in the future")
    try:
        roles = frozenset(Role(r) for r in claims.get("roles", []))
    except (TypeError, ValueError) as exc:
        raise InvalidToken("access token names an unknown role") from exc
    org = claims.get("org")
    if not isinstance(org, str):
        raise InvalidToken("access token has no organisation")
    return Caller(principal_id=str(claims["sub"]), org_id=org, roles=roles)
