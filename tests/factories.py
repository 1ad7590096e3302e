"""Test factories: organisations, principals, signed-in callers, and the standard demo network.

One place builds test data, so a model change is fixed here once (warehouse's factories). The
objects are real rows in the test's database and the headers come from the real token endpoint:
no test bypasses authentication.

    org = make_org(session, short_name="org-c")                  # active member, valid MoU
    keys = OrgKeys.generate(); org = make_org(session, short_name="org-d", keys=keys)
    principal, key = make_principal(session, org, [Role.HR_CHECKER], kind="service")
    session.commit()                    # make the rows visible to the app's sessions
    headers = await auth_headers(client, principal, key)
    await client.get("/v1/me", headers=headers)

See tests/conftest.py for the fixtures (`session`, `client`, `clock`, `network`, ...).
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import jwt
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from fastapi import FastAPI
from nacl.public import PrivateKey as X25519PrivateKey
from sqlalchemy.orm import Session

from server.auth.permissions import Role
from server.cases.models import Case
from server.consents.models import Consent
from server.context import AppContext
from server.registry.models import (
    Membership,
    Organisation,
    OrgStatus,
    OrgType,
    Principal,
    PrincipalKind,
)

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def ed25519_public_hex(key: Ed25519PrivateKey) -> str:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


def ed25519_seed_hex(key: Ed25519PrivateKey) -> str:
    from cryptography.hazmat.primitives.serialization import NoEncryption, PrivateFormat

    return key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()).hex()


@dataclass(frozen=True)
class OrgKeys:
    """An organisation's two key pairs; only the public halves go into the registry."""

    ed25519: Ed25519PrivateKey = field(repr=False)
    x25519: X25519PrivateKey = field(repr=False)

    @classmethod
    def generate(cls) -> OrgKeys:
        return cls(ed25519=Ed25519PrivateKey.generate(), x25519=X25519PrivateKey.generate())

    @property
    def ed25519_public_hex(self) -> str:
        return ed25519_public_hex(self.ed25519)

    @property
    def x25519_public_hex(self) -> str:
        return bytes(self.x25519.public_key).hex()

    def credentials_dict(self) -> dict[str, str]:
        """The `org_keys` member of a credentials file (docs/api.md)."""
        return {
            "ed25519_private": ed25519_seed_hex(self.ed25519),
            "x25519_private": bytes(self.x25519).hex(),
        }


def make_org(
    session: Session,
    short_name: str = "",
    *,
    keys: OrgKeys | None = None,
    today: date | None = None,
    **overrides: Any,
) -> Organisation:
    """An active member with a signed, valid MoU that may both register and check.

    `overrides` set any `Organisation` column (e.g. `status="suspended"`, `mou_expires_on=...`).
    MoU dates are relative to `today` (default: today's UTC date; pass `clock.today()` when a
    test moves the clock). Flushed, not committed.
    """
    today = today or datetime.now(UTC).date()
    short_name = short_name or f"org-{uuid.uuid4().hex[:8]}"
    keys = keys or OrgKeys.generate()
    values: dict[str, Any] = {
        "legal_name": f"{short_name.upper()} Humanitarian Foundation",
        "short_name": short_name,
        "country": "ID",
        "org_type": OrgType.INGO,
        "membership": Membership.MEMBER,
        "status": OrgStatus.ACTIVE,
        "mou_version": "MoU-2026-01",
        "mou_sha256": hashlib.sha256(f"signed MoU of {short_name}".encode()).hexdigest(),
        "mou_signed_on": today - timedelta(days=30),
        "mou_expires_on": today + timedelta(days=3 * 365),
        "data_sharing_agreement": True,
        "legal_basis": "legitimate_interests",
        "may_register": True,
        "may_check": True,
        "focal_points": [],
        "x25519_public_key": keys.x25519_public_hex,
        "ed25519_public_key": keys.ed25519_public_hex,
    }
    values.update(overrides)
    org = Organisation(**values)
    session.add(org)
    session.flush()
    return org


def make_secretariat(
    session: Session, short_name: str = "secretariat", **overrides: Any
) -> Organisation:
    """The network secretariat: runs the server, holds admins and auditors, never registers."""
    values: dict[str, Any] = {
        "legal_name": "PSEAH Network Secretariat",
        "short_name": short_name,
        "country": "ID",
        "org_type": OrgType.NETWORK_SECRETARIAT,
        "membership": Membership.MEMBER,
        "status": OrgStatus.ACTIVE,
        "data_sharing_agreement": False,
        "may_register": False,
        "may_check": False,
        "focal_points": [],
    }
    values.update(overrides)
    org = Organisation(**values)
    session.add(org)
    session.flush()
    return org


def make_principal(
    session: Session,
    org: Organisation,
    roles: Iterable[Role | str],
    *,
    kind: PrincipalKind | str = PrincipalKind.PERSON,
    name: str | None = None,
    active: bool = True,
) -> tuple[Principal, Ed25519PrivateKey]:
    """A principal of `org` with a fresh Ed25519 auth key; returns it and the private key.

    The factory does not apply the registry's role rules (network roles only in the
    secretariat), so a test can build the bad case the service must refuse. Flushed only.
    """
    key = Ed25519PrivateKey.generate()
    role_values = sorted(str(Role(r)) for r in roles)
    principal = Principal(
        org_id=org.id,
        name=name or f"{org.short_name} {'/'.join(role_values)} {kind}",
        kind=str(kind),
        roles=role_values,
        auth_public_key=ed25519_public_hex(key),
        active=active,
    )
    session.add(principal)
    session.flush()
    return principal, key


def make_case(session: Session, org: Organisation, registered_by: str, **overrides: Any) -> Case:
    """A substantiated case row of `org` with no entries: for tests of what reads cases (lists,
    paging, permissions), not of registration, which goes through the API (and always stores
    exactly `keys_per_check` entries).

    `overrides` set any `Case` column (e.g. `status="withdrawn"`, `created_at=...`). Flushed only.
    """
    values: dict[str, Any] = {
        "org_id": org.id,
        "registered_by": registered_by,
        "category": "sexual_abuse",
        "child_victim": False,
        "finding": "substantiated",
        "sanction": "dismissal",
        "finding_date": date(2025, 3, 1),
        "legal_basis": "legitimate_interests",
        "retention_until": date(2032, 3, 1),
        "mou_reference": "MoU-2026-01",
        "subject_notified_on": date(2025, 3, 10),
    }
    values.update(overrides)
    case = Case(**values)
    session.add(case)
    session.flush()
    return case


_CONSENT_DETAILS = {
    "applicant_ref": "applicant-0001",
    "position_ref": "position-0001",
    "form_sha256": "ab" * 32,
    "self_declared_finding": False,
}


def make_consent(
    session: Session, org: Organisation, recorded_by: str, **overrides: Any
) -> Consent:
    """A recruitment consent recorded by `org`, valid for 30 days from now, for 5 checks, with
    a unique lookup code: for tests that need a consent row, not the recording route.

    `overrides` set any `Consent` column (e.g. `max_checks=3`, `consented_at=clock()`), or one
    of the details the row holds only sealed (`applicant_ref`, `position_ref`, `form_sha256`,
    `self_declared_finding`): those are sealed, unsigned, to the organisation's directory key,
    as the upgrade migration seals rows (to a key nobody keeps when the organisation has none).
    Flushed only.

    On a database not yet upgraded past revision 0009 (a migration test), the row is stored as
    those revisions stored it, details in the clear (`make_plaintext_consent`), and the
    returned `Consent` is a transient object holding only its `id`.
    """
    from protocol.consent_details import ConsentDetails, seal_details

    columns = {c["name"] for c in sa.inspect(session.connection()).get_columns("consents")}
    if "sealed_details" not in columns:
        return Consent(id=make_plaintext_consent(session, org, recorded_by, **overrides))
    details = {k: overrides.pop(k, v) for k, v in _CONSENT_DETAILS.items()}
    values: dict[str, Any] = {
        "org_id": org.id,
        "recorded_by": recorded_by,
        "purpose": "recruitment",
        "consented_at": datetime.now(UTC),
        "expires_on": date.today() + timedelta(days=30),
        "max_checks": 5,
        "lookup_code_sha256": uuid.uuid4().hex * 2,
    }
    values.update(overrides)
    if "sealed_details" not in values:
        sealed = ConsentDetails(
            **details, purpose=values["purpose"], consented_at=values["consented_at"]
        )
        public = (
            bytes.fromhex(org.x25519_public_key)
            if org.x25519_public_key
            else bytes(X25519PrivateKey.generate().public_key)
        )
        values["sealed_details"] = seal_details(sealed, public, signing_seed=None)
    consent = Consent(**values)
    session.add(consent)
    session.flush()
    return consent


def make_plaintext_consent(
    session: Session, org: Organisation, recorded_by: str, **overrides: Any
) -> str:
    """A consent row as revisions 0002 to 0009 stored it, details in the clear (for migration
    tests, on a database not yet upgraded past them); returns its id. Flushed only."""
    values: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "org_id": org.id,
        "recorded_by": recorded_by,
        **_CONSENT_DETAILS,
        "purpose": "recruitment",
        "consented_at": datetime.now(UTC),
        "expires_on": date.today() + timedelta(days=30),
        "max_checks": 5,
        "checks_used": 0,
        "withdrawn_at": None,
        "lookup_code_sha256": uuid.uuid4().hex * 2,
        "created_at": datetime.now(UTC),
    }
    values.update(overrides)
    from server.db import UTCDateTime

    types: dict[str, Any] = {
        "self_declared_finding": sa.Boolean(),
        "consented_at": UTCDateTime(),
        "withdrawn_at": UTCDateTime(),
        "created_at": UTCDateTime(),
        "expires_on": sa.Date(),
    }
    table = sa.table("consents", *(sa.column(name, types.get(name)) for name in values))
    session.execute(sa.insert(table).values(**values))
    session.flush()
    return str(values["id"])


class AppClient(httpx.AsyncClient):
    """An `httpx.AsyncClient` wired to the app in-process; knows the app, so helpers can read
    its clock and settings."""

    def __init__(self, app: FastAPI, **kwargs: Any) -> None:
        kwargs.setdefault("base_url", "http://testserver")
        super().__init__(transport=httpx.ASGITransport(app=app), **kwargs)
        self.app = app

    @property
    def ctx(self) -> AppContext:
        ctx = self.app.state.ctx
        assert isinstance(ctx, AppContext)
        return ctx


def assertion_claims(
    principal_id: str,
    *,
    audience: str = "refcheck",
    now: float | None = None,
    lifetime: int = 120,
    jti: str | None = None,
    **claims: Any,
) -> dict[str, Any]:
    """The claims of a client assertion as the SDK makes it; `claims` override or add members.
    Tests of a bad signature (alg none, HMAC) sign these themselves."""
    issued = int(time.time() if now is None else now)
    body: dict[str, Any] = {
        "iss": principal_id,
        "sub": principal_id,
        "aud": audience,
        "iat": issued,
        "exp": issued + lifetime,
        "jti": jti or str(uuid.uuid4()),
    }
    body.update(claims)
    return body


def sign_assertion(
    principal_id: str,
    private_key: Ed25519PrivateKey,
    *,
    audience: str = "refcheck",
    now: float | None = None,
    lifetime: int = 120,
    jti: str | None = None,
    **claims: Any,
) -> str:
    """A client assertion as the SDK makes it; `claims` override or add members (tests of the
    refusals use this to make bad ones)."""
    body = assertion_claims(
        principal_id, audience=audience, now=now, lifetime=lifetime, jti=jti, **claims
    )
    return jwt.encode(body, private_key, algorithm="EdDSA", headers={"typ": "JWT"})


def token_form(assertion: str) -> dict[str, str]:
    return {
        "grant_type": "client_credentials",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion,
    }


async def access_token(
    client: httpx.AsyncClient, principal: Principal, private_key: Ed25519PrivateKey
) -> str:
    """Sign in through the real token endpoint; the assertion is dated by the app's clock when
    the client is an `AppClient`, else by the wall clock."""
    if isinstance(client, AppClient):
        now = client.ctx.now().timestamp()
        audience = client.ctx.settings.issuer
    else:
        now, audience = time.time(), "refcheck"
    assertion = sign_assertion(principal.id, private_key, audience=audience, now=now)
    response = await client.post("/v1/oauth/token", data=token_form(assertion))
    assert response.status_code == 200, response.text
    token = response.json()["access_token"]
    assert isinstance(token, str)
    return token


async def auth_headers(
    client: httpx.AsyncClient, principal: Principal, private_key: Ed25519PrivateKey
) -> dict[str, str]:
    """`Authorization` headers for `principal`, from the real token endpoint."""
    return {"Authorization": f"Bearer {await access_token(client, principal, private_key)}"}


@dataclass
class Actor:
    """A signed-in principal: its row, its auth key, its organisation and ready headers."""

    principal: Principal
    key: Ed25519PrivateKey = field(repr=False)
    org: Organisation
    headers: dict[str, str] = field(repr=False)

    @property
    def id(self) -> str:
        return self.principal.id

    @property
    def org_id(self) -> str:
        return self.org.id

    async def refresh(self, client: httpx.AsyncClient) -> None:
        """New headers, e.g. after the test moved the clock past the token's expiry."""
        self.headers = await auth_headers(client, self.principal, self.key)


@dataclass
class Network:
    """The standard test network (what `make run` seeds, minus the credentials files).

    secretariat: `admin` (network_admin) and `auditor`; members `org_a` and `org_b`, each with a
    focal point (person) and an HR checker (service account); `org_a_keys` / `org_b_keys` hold
    the members' private keys (for sealing, signing and opening disclosures).
    """

    secretariat: Organisation
    org_a: Organisation
    org_b: Organisation
    org_a_keys: OrgKeys
    org_b_keys: OrgKeys
    admin: Actor
    auditor: Actor
    a_focal: Actor
    a_hr: Actor
    b_focal: Actor
    b_hr: Actor

    @property
    def actors(self) -> dict[str, Actor]:
        return {
            "admin": self.admin,
            "auditor": self.auditor,
            "a_focal": self.a_focal,
            "a_hr": self.a_hr,
            "b_focal": self.b_focal,
            "b_hr": self.b_hr,
        }


async def build_network(session: Session, client: httpx.AsyncClient, today: date) -> Network:
    secretariat = make_secretariat(session)
    org_a_keys, org_b_keys = OrgKeys.generate(), OrgKeys.generate()
    org_a = make_org(session, "org-a", keys=org_a_keys, today=today)
    org_b = make_org(session, "org-b", keys=org_b_keys, today=today, org_type=OrgType.UN_AGENCY)
    specs: list[tuple[str, Organisation, Role, PrincipalKind]] = [
        ("admin", secretariat, Role.NETWORK_ADMIN, PrincipalKind.PERSON),
        ("auditor", secretariat, Role.AUDITOR, PrincipalKind.PERSON),
        ("a_focal", org_a, Role.FOCAL_POINT, PrincipalKind.PERSON),
        ("a_hr", org_a, Role.HR_CHECKER, PrincipalKind.SERVICE),
        ("b_focal", org_b, Role.FOCAL_POINT, PrincipalKind.PERSON),
        ("b_hr", org_b, Role.HR_CHECKER, PrincipalKind.SERVICE),
    ]
    made = {
        label: (make_principal(session, org, [role], kind=kind), org)
        for label, org, role, kind in specs
    }
    # Committed (to the test's savepoint) so the app's own sessions see the rows.
    session.commit()
    actors = {
        label: Actor(
            principal=principal,
            key=key,
            org=org,
            headers=await auth_headers(client, principal, key),
        )
        for label, ((principal, key), org) in made.items()
    }
    return Network(
        secretariat=secretariat,
        org_a=org_a,
        org_b=org_b,
        org_a_keys=org_a_keys,
        org_b_keys=org_b_keys,
        admin=actors["admin"],
        auditor=actors["auditor"],
        a_focal=actors["a_focal"],
        a_hr=actors["a_hr"],
        b_focal=actors["b_focal"],
        b_hr=actors["b_hr"],
    )
