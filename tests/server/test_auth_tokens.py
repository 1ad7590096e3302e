"""Sign-in (RFC 7523 client assertions) and access tokens: what is accepted, and every refusal."""

from __future__ import annotations

import base64
import json
import time
import uuid
from datetime import timedelta

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from server.auth.permissions import Role
from tests.factories import (
    AppClient,
    Network,
    assertion_claims,
    make_principal,
    sign_assertion,
    token_form,
)

pytestmark = pytest.mark.anyio

INVALID_CLIENT = "urn:refcheck:problem:invalid-client"
INVALID_TOKEN = "urn:refcheck:problem:invalid-token"


def _now(client: AppClient) -> float:
    return client.ctx.now().timestamp()


async def _token_with(client: AppClient, assertion: str):
    return await client.post("/v1/oauth/token", data=token_form(assertion))


def _assert_invalid_client(response) -> None:
    assert response.status_code == 401, response.text
    body = response.json()
    assert response.headers["content-type"] == "application/problem+json"
    assert body["type"] == INVALID_CLIENT
    assert body["error"] == "invalid_client"
    # Uniform on purpose: the answer never says which check failed.
    assert body["detail"] == "client authentication failed"


# --- client assertions ---------------------------------------------------------------------


async def test_valid_assertion_earns_a_bearer_token_that_authenticates(network, client):
    actor = network.a_hr
    assertion = sign_assertion(actor.id, actor.key, now=_now(client))
    response = await _token_with(client, assertion)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == client.ctx.settings.access_token_ttl_seconds
    assert response.headers["cache-control"] == "no-store"
    me = await client.get("/v1/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200
    assert me.json()["principal_id"] == actor.id
    assert me.json()["org_short_name"] == "org-a"


async def test_access_token_claims_follow_the_wire_contract(network, client, server_keys):
    actor = network.b_focal
    response = await _token_with(client, sign_assertion(actor.id, actor.key, now=_now(client)))
    token = response.json()["access_token"]
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "EdDSA"
    assert header["kid"] == server_keys.token_key_id
    claims = jwt.decode(
        token,
        server_keys.token_key.public_key(),
        algorithms=["EdDSA"],
        audience="refcheck/api",
        options={"verify_exp": False},
    )
    assert claims["iss"] == "refcheck"
    assert claims["sub"] == actor.id
    assert claims["org"] == network.org_b.id
    assert claims["roles"] == ["focal_point"]
    assert {"iat", "exp", "jti"} <= claims.keys()


async def test_replayed_assertion_jti_is_refused(network, client):
    actor = network.a_hr
    assertion = sign_assertion(actor.id, actor.key, now=_now(client))
    assert (await _token_with(client, assertion)).status_code == 200
    _assert_invalid_client(await _token_with(client, assertion))


async def test_jti_reuse_with_a_fresh_signature_is_refused(network, client):
    actor = network.a_hr
    jti = str(uuid.uuid4())
    first = sign_assertion(actor.id, actor.key, now=_now(client), jti=jti)
    assert (await _token_with(client, first)).status_code == 200
    second = sign_assertion(actor.id, actor.key, now=_now(client) + 1, jti=jti)
    _assert_invalid_client(await _token_with(client, second))


async def test_assertion_with_alg_none_is_refused(network, client):
    actor = network.a_hr
    claims = assertion_claims(actor.id, now=_now(client), lifetime=60)
    unsigned = jwt.encode(claims, "", algorithm="none")
    _assert_invalid_client(await _token_with(client, unsigned))


async def test_assertion_hs256_signed_with_the_public_key_is_refused(network, client):
    # Key confusion: an HMAC "signature" keyed with the (public) verification key.
    actor = network.a_hr
    claims = assertion_claims(actor.id, now=_now(client), lifetime=60)
    public = bytes.fromhex(actor.principal.auth_public_key)
    forged = jwt.encode(claims, public, algorithm="HS256")
    _assert_invalid_client(await _token_with(client, forged))


async def test_assertion_for_another_audience_is_refused(network, client):
    actor = network.a_hr
    assertion = sign_assertion(actor.id, actor.key, now=_now(client), audience="other-service")
    _assert_invalid_client(await _token_with(client, assertion))


async def test_assertion_naming_the_access_token_audience_is_refused(network, client):
    actor = network.a_hr
    assertion = sign_assertion(actor.id, actor.key, now=_now(client), audience="refcheck/api")
    _assert_invalid_client(await _token_with(client, assertion))


async def test_expired_assertion_is_refused(network, client):
    actor = network.a_hr
    assertion = sign_assertion(actor.id, actor.key, now=_now(client) - 200, lifetime=120)
    _assert_invalid_client(await _token_with(client, assertion))


async def test_assertion_living_longer_than_five_minutes_is_refused(network, client):
    actor = network.a_hr
    assertion = sign_assertion(actor.id, actor.key, now=_now(client), lifetime=301)
    _assert_invalid_client(await _token_with(client, assertion))


async def test_assertion_of_exactly_five_minutes_is_accepted(network, client):
    actor = network.a_hr
    assertion = sign_assertion(actor.id, actor.key, now=_now(client), lifetime=300)
    assert (await _token_with(client, assertion)).status_code == 200


async def test_assertion_issued_in_the_future_is_refused(network, client):
    actor = network.a_hr
    assertion = sign_assertion(actor.id, actor.key, now=_now(client) + 120, lifetime=60)
    _assert_invalid_client(await _token_with(client, assertion))


async def test_assertion_signed_by_an_unknown_key_is_refused(network, client):
    actor = network.a_hr
    stranger = Ed25519PrivateKey.generate()
    assertion = sign_assertion(actor.id, stranger, now=_now(client))
    _assert_invalid_client(await _token_with(client, assertion))


async def test_assertion_signed_by_another_principals_key_is_refused(network, client):
    assertion = sign_assertion(network.a_hr.id, network.b_hr.key, now=_now(client))
    _assert_invalid_client(await _token_with(client, assertion))


async def test_assertion_for_an_unknown_client_id_is_refused(network, client):
    assertion = sign_assertion(str(uuid.uuid4()), network.a_hr.key, now=_now(client))
    _assert_invalid_client(await _token_with(client, assertion))


async def test_assertion_whose_issuer_differs_from_subject_is_refused(network, client):
    actor = network.a_hr
    assertion = sign_assertion(actor.id, actor.key, now=_now(client), iss=network.b_hr.id)
    _assert_invalid_client(await _token_with(client, assertion))


@pytest.mark.parametrize("missing", ["jti", "exp", "iat", "aud"])
async def test_assertion_missing_a_required_claim_is_refused(network, client, missing):
    actor = network.a_hr
    claims = assertion_claims(actor.id, now=_now(client), lifetime=60)
    del claims[missing]
    assertion = jwt.encode(claims, actor.key, algorithm="EdDSA")
    _assert_invalid_client(await _token_with(client, assertion))


async def test_assertion_of_a_deactivated_principal_is_refused(network, client, session):
    actor = network.a_hr
    actor.principal.active = False
    session.commit()
    _assert_invalid_client(
        await _token_with(client, sign_assertion(actor.id, actor.key, now=_now(client)))
    )


async def test_garbage_assertion_is_refused(network, client):
    _assert_invalid_client(await _token_with(client, "not.a.jwt"))


async def test_wrong_assertion_type_is_refused(network, client):
    actor = network.a_hr
    form = token_form(sign_assertion(actor.id, actor.key, now=_now(client)))
    form["client_assertion_type"] = "urn:ietf:params:oauth:client-assertion-type:saml2-bearer"
    _assert_invalid_client(await client.post("/v1/oauth/token", data=form))


async def test_other_grant_types_are_refused(network, client):
    actor = network.a_hr
    form = token_form(sign_assertion(actor.id, actor.key, now=_now(client)))
    form["grant_type"] = "password"
    response = await client.post("/v1/oauth/token", data=form)
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"


# --- access tokens ---------------------------------------------------------------------------


def _claims(network: Network, client: AppClient, **override) -> dict:
    now = int(_now(client))
    claims = {
        "iss": "refcheck",
        "aud": "refcheck/api",
        "sub": network.a_hr.id,
        "org": network.org_a.id,
        "roles": ["hr_checker"],
        "iat": now,
        "exp": now + 300,
        "jti": str(uuid.uuid4()),
    }
    claims.update(override)
    return claims


async def _me_with(client: AppClient, token: str):
    return await client.get("/v1/me", headers={"Authorization": f"Bearer {token}"})


def _token(server_keys, claims: dict, *, key=None, algorithm: str = "EdDSA", kid=None) -> str:
    """`claims` signed as the server signs access tokens (its token key, EdDSA, its kid), but for
    the one of these a forgery below changes."""
    return jwt.encode(
        claims,
        server_keys.token_key if key is None else key,
        algorithm=algorithm,
        headers={"kid": server_keys.token_key_id if kid is None else kid},
    )


def _assert_invalid_token(response) -> None:
    assert response.status_code == 401, response.text
    assert response.json()["type"] == INVALID_TOKEN
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_server_signed_token_built_in_the_test_is_accepted(network, client, server_keys):
    # The positive control for the forgeries below: same claims, real key.
    token = _token(server_keys, _claims(network, client))
    assert (await _me_with(client, token)).status_code == 200


async def test_access_token_with_alg_none_is_refused(network, client, server_keys):
    token = _token(server_keys, _claims(network, client), key="", algorithm="none")
    _assert_invalid_token(await _me_with(client, token))


async def test_access_token_hs256_signed_with_the_server_public_key_is_refused(
    network, client, server_keys
):
    token = _token(
        server_keys, _claims(network, client), key=server_keys.token_public, algorithm="HS256"
    )
    _assert_invalid_token(await _me_with(client, token))


async def test_access_token_for_the_wrong_audience_is_refused(network, client, server_keys):
    token = _token(server_keys, _claims(network, client, aud="refcheck"))
    _assert_invalid_token(await _me_with(client, token))


async def test_access_token_from_another_issuer_is_refused(network, client, server_keys):
    token = _token(server_keys, _claims(network, client, iss="someone-else"))
    _assert_invalid_token(await _me_with(client, token))


async def test_expired_access_token_is_refused(network, client, clock):
    assert (await client.get("/v1/me", headers=network.a_hr.headers)).status_code == 200
    clock.advance(seconds=client.ctx.settings.access_token_ttl_seconds)
    _assert_invalid_token(await client.get("/v1/me", headers=network.a_hr.headers))


async def test_a_verified_token_altered_by_one_character_is_refused(network, client):
    """Verified tokens are cached by their exact text; an altered copy is verified on its own."""
    headers = network.a_hr.headers
    assert (await client.get("/v1/me", headers=headers)).status_code == 200
    token = headers["Authorization"].removeprefix("Bearer ")
    head, payload, signature = token.split(".")
    flipped = ("B" if signature[0] != "B" else "C") + signature[1:]
    _assert_invalid_token(await _me_with(client, f"{head}.{payload}.{flipped}"))
    claims = jwt.decode(token, options={"verify_signature": False})
    claims["org"] = network.org_b.id
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    _assert_invalid_token(await _me_with(client, f"{head}.{forged}.{signature}"))
    assert (await client.get("/v1/me", headers=headers)).status_code == 200


async def test_an_oversized_token_is_refused_unparsed(network, client):
    _assert_invalid_token(await _me_with(client, "a" * 5000))


async def test_access_token_signed_by_an_unknown_key_is_refused(network, client, server_keys):
    token = _token(server_keys, _claims(network, client), key=Ed25519PrivateKey.generate())
    _assert_invalid_token(await _me_with(client, token))


async def test_access_token_naming_an_unknown_kid_is_refused(network, client, server_keys):
    token = _token(server_keys, _claims(network, client), kid="0123456789abcdef")
    _assert_invalid_token(await _me_with(client, token))


async def test_client_assertion_cannot_be_used_as_access_token(network, client):
    actor = network.a_hr
    _assert_invalid_token(
        await _me_with(client, sign_assertion(actor.id, actor.key, now=_now(client)))
    )


async def test_access_token_claiming_another_organisation_is_refused(network, client, server_keys):
    token = _token(server_keys, _claims(network, client, org=network.org_b.id))
    _assert_invalid_token(await _me_with(client, token))


async def test_missing_or_non_bearer_authorization_is_refused(network, client):
    _assert_invalid_token(await client.get("/v1/me"))
    _assert_invalid_token(
        await client.get("/v1/me", headers={"Authorization": "Basic Zm9vOmJhcg=="})
    )


async def test_deactivated_principal_is_refused_at_once(network, client, session):
    network.a_hr.principal.active = False
    session.commit()
    _assert_invalid_token(await client.get("/v1/me", headers=network.a_hr.headers))


async def test_roles_are_read_from_the_registry_not_the_token(network, client, session):
    network.a_hr.principal.roles = [Role.FOCAL_POINT.value]
    session.commit()
    me = await client.get("/v1/me", headers=network.a_hr.headers)
    assert me.json()["roles"] == ["focal_point"]


async def test_jwks_publishes_the_key_that_verifies_access_tokens(network, client):
    jwks = (await client.get("/.well-known/jwks.json")).json()
    (key,) = jwks["keys"]
    assert key["kty"] == "OKP" and key["crv"] == "Ed25519" and key["alg"] == "EdDSA"
    raw = base64.urlsafe_b64decode(key["x"] + "=" * (-len(key["x"]) % 4))
    token = network.a_hr.headers["Authorization"].removeprefix("Bearer ")
    assert jwt.get_unverified_header(token)["kid"] == key["kid"]
    claims = jwt.decode(
        token,
        Ed25519PublicKey.from_public_bytes(raw),
        algorithms=["EdDSA"],
        audience="refcheck/api",
        options={"verify_exp": False},
    )
    assert claims["sub"] == network.a_hr.id


async def test_expired_used_assertions_are_pruned_but_live_ones_kept(
    network, client, session, clock
):
    from sqlalchemy import func, select

    from server.auth.models import UsedAssertion
    from server.auth.services import prune_used_assertions

    before = session.scalar(select(func.count()).select_from(UsedAssertion))
    assert before and before >= 6  # the network signed in six principals
    assert prune_used_assertions(session, clock()) == 0
    assert prune_used_assertions(session, clock() + timedelta(minutes=10)) == before


async def test_new_principal_can_sign_in_with_wall_clock_assertion(network, client, session):
    principal, key = make_principal(session, network.org_b, [Role.HR_CHECKER], kind="service")
    session.commit()
    assertion = sign_assertion(principal.id, key, now=time.time())
    assert (await _token_with(client, assertion)).status_code == 200
