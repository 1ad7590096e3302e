"""Wire shapes of the authentication endpoints (docs/api.md, "Authentication")."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class TokenResponse(BaseModel):
    access_token: str
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int


class Jwk(BaseModel):
    kty: Literal["OKP"] = "OKP"
    crv: Literal["Ed25519"] = "Ed25519"
    x: str
    kid: str
    use: Literal["sig"] = "sig"
    alg: Literal["EdDSA"] = "EdDSA"


class Jwks(BaseModel):
    keys: list[Jwk]


class Me(BaseModel):
    principal_id: str
    name: str
    org_id: str
    org_short_name: str
    roles: list[str]
    permissions: list[str]
