"""Access tokens: short-lived EdDSA JWTs the server issues and verifies.

pyjwt is always called with an explicit `algorithms=["EdDSA"]`: accepting the header's choice would
let `alg: none` or an HS256 token "signed" with our public key through (the classic key-confusion
attack). `iss`, `aud`, `iat`, `exp`, `sub` and `jti` are required claims.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import jwt

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


def verify_access_token(
    token: str, *, settings: Settings, keys: ServerKeys, now: datetime
) -> Caller:
    """Check signature, issuer, audience and expiry; return who the token was issued to.

    The roles in the returned `Caller` are those of the token; `server.auth.deps` replaces them
    with the principal's current roles so a change takes effect before the token expires.
    """
    try:
        header = jwt.get_unverified_header(token)
        # A token naming another key was not signed by our current key; refusing it early keeps
        # the error uniform and leaves room for key rotation (several `kid`s in the JWKS).
        if header.get("kid") != keys.token_key_id:
            raise InvalidToken("access token signed by an unknown key")
        claims = jwt.decode(
            token,
            keys.token_key.public_key(),
            algorithms=["EdDSA"],
            # `aud` is `<issuer>/api`, never the bare issuer that client assertions name, so a
            # client assertion can never pass as an access token or the other way round.
            audience=settings.token_audience,
            issuer=settings.issuer,
            options={
                "require": ["iss", "aud", "iat", "exp", "sub", "jti"],
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
            },
        )
    except jwt.PyJWTError as exc:
        raise InvalidToken("access token rejected") from exc
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
