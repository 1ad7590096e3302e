"""Sign-in (OAuth 2.0 client credentials with a signed JWT assertion), the JWKS and `/v1/me`."""

from __future__ import annotations

import base64
from typing import Annotated

from fastapi import APIRouter, Depends, Form
from fastapi.responses import JSONResponse

from server.auth.deps import Ctx, Db, require
from server.auth.errors import InvalidClientAssertion, UnsupportedGrantType
from server.auth.permissions import Permission
from server.auth.schemas import Jwk, Jwks, Me, TokenResponse
from server.auth.services import ASSERTION_TYPE, GRANT_TYPE, authenticate_client, issue_token_for
from server.auth.tokens import Caller
from server.errors import NotFound
from server.registry.models import Organisation, Principal

router = APIRouter(tags=["auth"])

# RFC 6749 §5.1: token responses must not be cached by any intermediary.
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


@router.post("/v1/oauth/token", response_model=TokenResponse)
def token(
    ctx: Ctx,
    session: Db,
    grant_type: Annotated[str | None, Form()] = None,
    client_assertion_type: Annotated[str | None, Form()] = None,
    client_assertion: Annotated[str | None, Form(max_length=8192)] = None,
) -> JSONResponse:
    """Exchange a signed client assertion (RFC 7523 `private_key_jwt`) for an access token.

    Public by nature: this is where a principal proves who it is.
    """
    if grant_type != GRANT_TYPE:
        raise UnsupportedGrantType("grant_type must be client_credentials")
    if client_assertion_type != ASSERTION_TYPE or not client_assertion:
        raise InvalidClientAssertion("client authentication failed")
    principal = authenticate_client(session, ctx, client_assertion)
    access_token, ttl = issue_token_for(ctx, principal)
    # The request commits the `jti` before this answer is sent: a replay of the assertion
    # finds it even after a server restart.
    body = TokenResponse(access_token=access_token, expires_in=ttl)
    return JSONResponse(body.model_dump(), headers=_NO_STORE)


@router.get("/.well-known/jwks.json", response_model=Jwks)
def jwks(ctx: Ctx) -> Jwks:
    """The public key(s) that sign access tokens, so other services can verify them offline:
    the current key first and, after a rotation, the previous one, whose tokens still verify."""
    current = ctx.keys.token_key_id
    found = ctx.keys.token_ring.verifying_keys()
    order = [current, *sorted(k for k in found if k != current)]
    return Jwks(
        keys=[
            Jwk(x=base64.urlsafe_b64encode(found[kid]).rstrip(b"=").decode(), kid=kid)
            for kid in order
        ]
    )


@router.get("/v1/me", response_model=Me)
def me(caller: Annotated[Caller, Depends(require(Permission.SELF_READ))], session: Db) -> Me:
    principal = session.get(Principal, caller.principal_id)
    org = session.get(Organisation, caller.org_id)
    if principal is None or org is None:
        raise NotFound()
    return Me(
        principal_id=principal.id,
        name=principal.name,
        org_id=org.id,
        org_short_name=org.short_name,
        roles=sorted(caller.roles),
        permissions=sorted(caller.permissions),
    )
