"""Client assertions and the token cache, without a server."""

from __future__ import annotations

import jwt
import pytest

from client_sdk import Credentials, InvalidResponse
from client_sdk._auth import ASSERTION_TYPE, TokenCache, sign_assertion, token_request_form
from client_sdk.keystore import ed25519_public


def creds() -> Credentials:
    return Credentials(client_id="p-1", auth_private_key=b"\x07" * 32, issuer="refcheck")


def test_assertion_has_the_claims_docs_api_requires() -> None:
    c = creds()
    token = sign_assertion(c, now=1_700_000_000)
    assert jwt.get_unverified_header(token) == {"alg": "EdDSA", "typ": "JWT"}
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    public = Ed25519PublicKey.from_public_bytes(ed25519_public(c.auth_private_key))
    claims = jwt.decode(
        token,
        public,
        algorithms=["EdDSA"],
        audience="refcheck",
        options={"verify_exp": False, "verify_iat": False},
    )
    assert claims["iss"] == claims["sub"] == "p-1"
    assert 0 < claims["exp"] - claims["iat"] <= 300
    assert claims["jti"]


def test_each_assertion_has_a_fresh_jti() -> None:
    a = jwt.decode(sign_assertion(creds()), options={"verify_signature": False})
    b = jwt.decode(sign_assertion(creds()), options={"verify_signature": False})
    assert a["jti"] != b["jti"]


def test_token_form_is_the_client_credentials_grant() -> None:
    form = token_request_form(creds())
    assert form["grant_type"] == "client_credentials"
    assert form["client_assertion_type"] == ASSERTION_TYPE


def test_token_is_renewed_before_it_expires() -> None:
    now = [1000.0]
    cache = TokenCache(margin=30, clock=lambda: now[0])
    cache.store({"access_token": "t1", "token_type": "Bearer", "expires_in": 600})
    now[0] += 560
    assert cache.current() == "t1"
    now[0] += 15  # 25 s left, inside the 30 s margin
    assert cache.current() is None


def test_margin_never_exceeds_half_a_short_token_life() -> None:
    now = [0.0]
    cache = TokenCache(margin=30, clock=lambda: now[0])
    cache.store({"access_token": "t", "token_type": "bearer", "expires_in": 40})
    now[0] = 19
    assert cache.current() == "t"
    now[0] = 21
    assert cache.current() is None


def test_invalidate_only_forgets_the_named_token() -> None:
    cache = TokenCache()
    cache.store({"access_token": "new", "token_type": "Bearer", "expires_in": 600})
    cache.invalidate("old")
    assert cache.current() == "new"
    cache.invalidate("new")
    assert cache.current() is None


@pytest.mark.parametrize(
    "body",
    [
        None,
        {"token_type": "Bearer", "expires_in": 60},
        {"access_token": "t", "token_type": "mac", "expires_in": 60},
        {"access_token": "t", "token_type": "Bearer", "expires_in": 0},
    ],
)
def test_malformed_token_answers_are_refused(body: object) -> None:
    with pytest.raises(InvalidResponse):
        TokenCache().store(body)
