"""Client authentication (RFC 7523 `private_key_jwt`) and the access tokens it earns.

The server keeps no shared secret: a principal proves itself by signing a short-lived assertion
with its Ed25519 key, and the database holds only the public half, so a database thief can neither
sign in nor replay a password. Every failure raises the same opaque `InvalidClientAssertion`:
telling a prober whether the client id exists, the signature was wrong or the `jti` was replayed
would help them.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import ColumnElement, and_, bindparam, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from server.auth.errors import InvalidClientAssertion
from server.auth.models import UsedAssertion
from server.auth.permissions import Role
from server.auth.tokens import Caller, issue_access_token
from server.context import AppContext
from server.registry.models import Organisation, OrgStatus, Principal

log = logging.getLogger("refcheck.server.auth")

#: RFC 7523 leaves the lifetime to the server; five minutes bounds how long a captured assertion
#: is worth anything and how long its `jti` must be remembered.
MAX_ASSERTION_LIFETIME_SECONDS = 300
#: Tolerated clock difference between the HR system and the server, in either direction.
CLOCK_SKEW_SECONDS = 30
#: Longest `jti` accepted; longer values only serve to bloat the replay table.
MAX_JTI_LENGTH = 200
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
GRANT_TYPE = "client_credentials"


def _replay_key(client_id: str, jti: str) -> str:
    return hashlib.sha256(f"{client_id}\x00{jti}".encode()).hexdigest()


def _refuse(reason: str) -> InvalidClientAssertion:
    # The reason goes to the server log (no identifiers in it), never to the client.
    log.info("client assertion refused: %s", reason)
    return InvalidClientAssertion("client authentication failed")


def _public_key(hex_key: str) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(bytes.fromhex(hex_key))


def authenticate_client(session: Session, ctx: AppContext, assertion: str) -> Principal:
    """Verify a client assertion and remember its `jti`; return the authenticated principal.

    The caller must commit the session: the `jti` row is what refuses a replay.
    """
    now = ctx.now()
    try:
        header = jwt.get_unverified_header(assertion)
        unverified = jwt.decode(assertion, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise _refuse("not a JWT") from exc
    # Checked before any key is looked up: `none`, HS256 "signed" with a public key, or RSA
    # would otherwise reach code that trusts the header's choice of algorithm.
    if header.get("alg") != "EdDSA":
        raise _refuse("algorithm is not EdDSA")
    client_id = unverified.get("sub")
    if not isinstance(client_id, str) or not _is_uuid(client_id):
        raise _refuse("sub is not a client id")
    principal = principal_in_good_standing(session, client_id)
    if principal is None:
        raise _refuse("unknown or inactive client")
    try:
        claims = jwt.decode(
            assertion,
            _public_key(principal.auth_public_key),
            # Explicit list: the header never chooses the algorithm (key-confusion attacks).
            algorithms=["EdDSA"],
            # RFC 7523 §3: the assertion names this server, so one minted for another service
            # that trusts the same key cannot be spent here.
            audience=ctx.settings.issuer,
            issuer=client_id,
            options={
                "require": ["iss", "sub", "aud", "iat", "exp", "jti"],
                # Time is judged below against the app clock, which tests control.
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
            },
        )
    except (jwt.PyJWTError, ValueError) as exc:
        raise _refuse("signature, issuer or audience invalid") from exc
    # pyjwt accepts a list of audiences that merely contains ours. An assertion valid at several
    # services at once can be spent at each: one captured at (or minted by) another service that
    # trusts the same key would sign in here, where its `jti` was never seen. Exactly ours.
    audience = claims["aud"]
    if isinstance(audience, list) and len(audience) != 1:
        raise _refuse("assertion names more than one audience")
    iat, exp, jti = claims["iat"], claims["exp"], claims["jti"]
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (iat, exp)):
        raise _refuse("iat/exp are not integers")
    if not isinstance(jti, str) or not 0 < len(jti) <= MAX_JTI_LENGTH:
        raise _refuse("jti missing or too long")
    ts = int(now.timestamp())
    if exp <= ts:
        raise _refuse("assertion expired")
    if iat > ts + CLOCK_SKEW_SECONDS:
        raise _refuse("assertion issued in the future")
    if exp - iat > MAX_ASSERTION_LIFETIME_SECONDS or exp <= iat:
        raise _refuse("assertion lifetime exceeds five minutes")
    if claims.get("nbf") is not None and claims["nbf"] > ts + CLOCK_SKEW_SECONDS:
        raise _refuse("assertion not yet valid")
    _remember_jti(session, client_id, jti, datetime.fromtimestamp(exp, UTC))
    return principal


def _remember_jti(session: Session, client_id: str, jti: str, expires_at: datetime) -> None:
    """Insert the replay row; a second use of the same assertion hits the primary key."""
    try:
        with session.begin_nested():
            session.add(
                UsedAssertion(replay_key=_replay_key(client_id, jti), expires_at=expires_at)
            )
    except IntegrityError as exc:
        raise _refuse("jti replayed") from exc


def principal_in_good_standing(session: Session, principal_id: str) -> Principal | None:
    """The principal if it may act now: active, and its organisation has not left the network.

    A withdrawn member keeps no access at all: its staff could otherwise go on reading the
    applicants' details sealed to it in earlier requests. A suspended member may still sign in
    (to withdraw its cases or see its requests); the MoU gate refuses it registering, checking
    and answering.
    """
    return session.scalars(_IN_GOOD_STANDING, {"principal_id": principal_id}).one_or_none()


def _good_standing(principal_id: Any) -> ColumnElement[bool]:
    return and_(
        Principal.id == principal_id,
        Principal.active.is_(True),
        Organisation.status != OrgStatus.WITHDRAWN,
    )


# Built once: every authenticated request runs one of these, and SQLAlchemy then compiles it once.
_IN_GOOD_STANDING = (
    select(Principal)
    .join(Organisation, Organisation.id == Principal.org_id)
    .where(_good_standing(bindparam("principal_id")))
)
_CALLER_IN_GOOD_STANDING = (
    select(Principal.id, Principal.org_id, Principal.roles)
    .join(Organisation, Organisation.id == Principal.org_id)
    .where(_good_standing(bindparam("principal_id")))
)


def caller_in_good_standing(session: Session, principal_id: str) -> Caller | None:
    """`principal_in_good_standing` as the request's `Caller` (its current organisation and
    roles), read as three columns: every authenticated request asks this."""
    row = (
        session.connection()
        .execute(_CALLER_IN_GOOD_STANDING, {"principal_id": principal_id})
        .one_or_none()
    )
    if row is None:
        return None
    return Caller(principal_id=row[0], org_id=row[1], roles=frozenset(Role(r) for r in row[2]))


def _is_uuid(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False


def caller_for(principal: Principal) -> Caller:
    return Caller(
        principal_id=principal.id,
        org_id=principal.org_id,
        roles=frozenset(Role(r) for r in principal.roles),
    )


def issue_token_for(ctx: AppContext, principal: Principal) -> tuple[str, int]:
    return issue_access_token(
        settings=ctx.settings, keys=ctx.keys, caller=caller_for(principal), now=ctx.now()
    )


def prune_used_assertions(session: Session, now: datetime) -> int:
    """Forget `jti`s whose assertions have expired (their `exp` refuses them on its own)."""
    cutoff = now - timedelta(seconds=CLOCK_SKEW_SECONDS)
    result = session.execute(delete(UsedAssertion).where(UsedAssertion.expires_at < cutoff))
    return int(getattr(result, "rowcount", 0) or 0)
