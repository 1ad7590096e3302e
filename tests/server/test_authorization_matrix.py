"""The authorisation matrix: every route, every role, and a foreign organisation.

`MATRIX` below is the hand-written statement of who may call what. It is deliberately *not*
derived from `server.auth.permissions.ROLE_PERMISSIONS`: a mistake in that table must show up
here as a failing cell. The test fails when the app serves a route missing from `MATRIX` (or
`MATRIX` names a route the app no longer serves), so whoever adds a route adds its row.

Adding a row (one line, in `MATRIX`)::

    "POST /v1/cases": allow(FOCAL, own_org_only=False, body=lambda owner: {...}),

* `allow(*roles)`: exactly these roles pass the permission check; every other role gets 403
  `permission-denied`, and a request without a token 401. `PUBLIC` rows need no token.
* `own_org_only=True`: the route reads or changes one organisation's resource named in its
  path. Member callers (focal point, HR checker of org-a) are then also sent a resource of
  org-b and must get 404: an organisation never reads another's data. Give such a POST/PATCH
  row a valid `body`, or the 422 of an invalid body would hide the 404.
* `body`: JSON that makes the allowed call succeed; with it, allowed callers must get 2xx.
  Without it, allowed callers must merely pass authorisation (anything but 401/403).
* Path parameters are filled by `PATH_PARAMS[name](session, owner_org)`, which returns the id of
  a resource owned by `owner_org` (the caller's own organisation, or org-b for the foreign check).
  A new path parameter needs a resolver there.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import fastapi.routing
import pytest
from fastapi.routing import APIRoute
from sqlalchemy import select
from sqlalchemy.orm import Session

from protocol.disclosure import SEALED_ANSWER_SIZE
from server.auth.permissions import Role
from server.registry.models import Organisation, OrgType
from tests.factories import (
    Actor,
    AppClient,
    Network,
    ed25519_public_hex,
    make_case,
    make_consent,
    make_principal,
)

pytestmark = pytest.mark.anyio

ADMIN, FOCAL, HR, AUDITOR = (
    Role.NETWORK_ADMIN.value,
    Role.FOCAL_POINT.value,
    Role.HR_CHECKER.value,
    Role.AUDITOR.value,
)
ALL = (ADMIN, FOCAL, HR, AUDITOR)
MEMBERS = (FOCAL, HR)

Body = Callable[[Organisation], dict[str, Any]]


@dataclass(frozen=True)
class Row:
    roles: frozenset[str]
    public: bool = False
    own_org_only: bool = False
    body: Body | None = None
    # False: the body passes the schema (so a foreign resource's 404 shows) but cannot succeed
    # here (sealed keys made for the case the resolver creates); allowed callers must merely
    # pass authorisation.
    succeeds: bool = True


def allow(
    *roles: str, own_org_only: bool = False, body: Body | None = None, succeeds: bool = True
) -> Row:
    return Row(roles=frozenset(roles), own_org_only=own_org_only, body=body, succeeds=succeeds)


PUBLIC = Row(roles=frozenset(ALL), public=True)


def _new_org_body(_owner: Organisation) -> dict[str, Any]:
    return {
        "legal_name": "Yayasan Matrix",
        "short_name": f"matrix-{uuid.uuid4().hex[:8]}",
        "org_type": "national_ngo",
    }


def _new_principal_body(owner: Organisation) -> dict[str, Any]:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    network_org = owner.org_type == OrgType.NETWORK_SECRETARIAT
    return {
        "name": "matrix principal",
        "kind": "person",
        "roles": [AUDITOR if network_org else FOCAL],
        "auth_public_key": ed25519_public_hex(Ed25519PrivateKey.generate()),
    }


# route ("METHOD /path") -> who may call it. Keep rows grouped by domain.
MATRIX: dict[str, Row] = {
    # health and sign-in
    "GET /healthz": PUBLIC,
    "GET /readyz": PUBLIC,
    "GET /.well-known/jwks.json": PUBLIC,
    "POST /v1/oauth/token": PUBLIC,
    "GET /v1/me": allow(*ALL, body=None),
    # registry
    "POST /v1/orgs": allow(ADMIN, body=_new_org_body),
    "GET /v1/orgs": allow(ADMIN),
    "GET /v1/orgs/{org_id}": allow(*ALL, own_org_only=True),
    "PATCH /v1/orgs/{org_id}": allow(ADMIN, body=lambda _o: {"mou_version": "MoU-2026-02"}),
    "POST /v1/orgs/{org_id}/principals": allow(ADMIN, body=_new_principal_body),
    "GET /v1/orgs/{org_id}/principals": allow(ADMIN),
    "POST /v1/principals/{principal_id}/deactivate": allow(ADMIN, body=lambda _o: {}),
    "GET /v1/directory": allow(ADMIN, FOCAL, HR),
    # where notifications go: the admin for any organisation, a focal point for its own
    "PATCH /v1/orgs/{org_id}/notification-addresses": allow(
        ADMIN, FOCAL, own_org_only=True, body=lambda _o: {"emails": []}
    ),
    "GET /v1/notifications": allow(ADMIN),
    # policy and audit
    "GET /v1/policy": allow(*ALL),
    "GET /v1/audit": allow(ADMIN, AUDITOR),
    "GET /v1/audit/export": allow(ADMIN, AUDITOR),
    # the transparency log: heads and proofs for everyone, entries for the secretariat's
    # readers, cosignatures only from a witness (a role none of these actors holds)
    "GET /v1/transparency/sth": allow(*ALL),
    "GET /v1/transparency/consistency": allow(*ALL),
    "GET /v1/transparency/inclusion": allow(*ALL),
    "GET /v1/transparency/entries": allow(ADMIN, AUDITOR),
    "POST /v1/transparency/cosignatures": allow(),
    # statistics: network-wide for the secretariat, own organisation for members
    "GET /v1/stats": allow(*ALL),
    "GET /v1/stats/retention": allow(ADMIN, AUDITOR),
    "GET /v1/stats/answer-times": allow(ADMIN, AUDITOR),
    # blind-match protocol
    "GET /v1/registry/filter": allow(FOCAL, HR),
    "GET /v1/registry/fillers": allow(ADMIN, AUDITOR),
    "GET /v1/network/keys": PUBLIC,
    "POST /v1/cases": allow(FOCAL),
    "GET /v1/cases": allow(FOCAL),
    "GET /v1/cases/{case_id}": allow(FOCAL, own_org_only=True),
    "GET /v1/cases/{case_id}/filter-values": allow(FOCAL, own_org_only=True),
    "POST /v1/cases/{case_id}/rekey": allow(
        FOCAL,
        own_org_only=True,
        body=lambda _o: {"key_id": "0" * 16, "sealed_keys": "00" * 115},
        succeeds=False,
    ),
    "PATCH /v1/cases/{case_id}": allow(
        FOCAL, own_org_only=True, body=lambda _o: {"retention_until": "2031-03-01"}
    ),
    "POST /v1/cases/{case_id}/withdraw": allow(
        FOCAL, own_org_only=True, body=lambda _o: {"reason": "registered_in_error"}
    ),
    "POST /v1/consents": allow(HR),
    "GET /v1/consents/{consent_id}": allow(HR, own_org_only=True),
    "POST /v1/consents/{consent_id}/withdraw": allow(HR, own_org_only=True, body=lambda _o: {}),
    "POST /v1/checks": allow(HR),
    # Only the principal that ran the check may claim from it (the resolver's check is the
    # caller's own when the caller is an HR checker of the owner); an unknown tag is answered
    # with no entries.
    "POST /v1/checks/{check_id}/entries": allow(
        HR,
        own_org_only=True,
        body=lambda _o: {"claims": [{"index": 0, "tag": "00" * 16, "proof": "00" * 64}]},
    ),
    # disclosure workflow: holder side for focal points, requester side for HR checkers,
    # overdue metadata for the secretariat; the applicant's lookup for HR and the secretariat
    "POST /v1/disclosure-requests": allow(HR),
    "GET /v1/disclosure-requests": allow(ADMIN, FOCAL, HR),
    "GET /v1/disclosure-requests/{request_id}": allow(FOCAL, HR, own_org_only=True),
    "POST /v1/disclosure-requests/{request_id}/acknowledge": allow(
        FOCAL, own_org_only=True, body=lambda _o: {}
    ),
    "POST /v1/disclosure-requests/{request_id}/answer": allow(
        FOCAL, own_org_only=True, body=lambda _o: {"sealed_answer": "00" * SEALED_ANSWER_SIZE}
    ),
    "POST /v1/disclosure-requests/{request_id}/withdraw": allow(
        HR, own_org_only=True, body=lambda _o: {}
    ),
    "POST /v1/disclosure-requests/{request_id}/close": allow(HR, own_org_only=True),
    "POST /v1/disclosure-requests/{request_id}/outcome": allow(
        HR, own_org_only=True, body=lambda _o: {"outcome": "hired"}
    ),
    "GET /v1/consent-lookup/{code}": allow(ADMIN, HR, own_org_only=True),
    "POST /v1/consent-lookup/{code}/withdraw": allow(
        ADMIN, HR, own_org_only=True, body=lambda _o: {}
    ),
}


def _principal_of(session: Session, owner: Organisation) -> str:
    # A fresh principal, so that deactivating it never signs out the caller.
    network_org = owner.org_type == OrgType.NETWORK_SECRETARIAT
    principal, _ = make_principal(
        session, owner, [Role.AUDITOR if network_org else Role.HR_CHECKER]
    )
    return principal.id


def _case_of(session: Session, owner: Organisation) -> str:
    registrar, _ = make_principal(session, owner, [Role.FOCAL_POINT])
    return make_case(session, owner, registrar.id).id


def _consent_of(session: Session, owner: Organisation) -> str:
    recorder, _ = make_principal(session, owner, [Role.HR_CHECKER])
    return make_consent(session, owner, recorder.id).id


def _check_of(session: Session, owner: Organisation) -> str:
    """A check run just now by the owner's first HR checker (made if there is none), still
    within its entries window."""
    from protocol.hazmat.ristretto255 import GENERATOR
    from server.checks.models import Check
    from server.registry.models import Principal

    principals = session.scalars(
        select(Principal).where(Principal.org_id == owner.id).order_by(Principal.created_at)
    )
    checker = next((p for p in principals if Role.HR_CHECKER.value in p.roles), None)
    if checker is None:
        checker, _ = make_principal(session, owner, [Role.HR_CHECKER])
    check = Check(
        org_id=owner.id,
        consent_id=make_consent(session, owner, checker.id).id,
        principal_id=checker.id,
        at=datetime.now(UTC),
        key_seq=1,
        evaluated=GENERATOR * 32,
    )
    session.add(check)
    session.flush()
    return check.id


def _request_of(session: Session, owner: Organisation) -> str:
    # The owner on both sides, so the one resource serves the holder's and the requester's
    # rows (the API refuses such a request; the authorisation check does not care).
    from server.disclosures.models import DisclosureRequest

    requester, _ = make_principal(session, owner, [Role.HR_CHECKER])
    now = datetime.now(UTC)
    request = DisclosureRequest(
        requester_org_id=owner.id,
        requester_principal_id=requester.id,
        holder_org_id=owner.id,
        case_id=_case_of(session, owner),
        entry_id=str(uuid.uuid4()),
        consent_id=_consent_of(session, owner),
        state="requested",
        created_at=now,
        due_at=now + timedelta(days=10),
    )
    session.add(request)
    session.flush()
    return request.id


def _lookup_code_of(session: Session, owner: Organisation) -> str:
    from server.consents.models import Consent
    from server.consents.services import lookup_code_sha256, new_lookup_code

    code = new_lookup_code()
    consent = session.get(Consent, _consent_of(session, owner))
    assert consent is not None
    consent.lookup_code_sha256 = lookup_code_sha256(code)
    session.flush()
    return code


# path parameter -> id of a resource of that name owned by the given organisation
PATH_PARAMS: dict[str, Callable[[Session, Organisation], str]] = {
    "org_id": lambda _session, owner: owner.id,
    "principal_id": _principal_of,
    "case_id": _case_of,
    "consent_id": _consent_of,
    "check_id": _check_of,
    "request_id": _request_of,
    "code": _lookup_code_of,
}

_ROLE_ACTOR = {ADMIN: "admin", AUDITOR: "auditor", FOCAL: "a_focal", HR: "a_hr"}


def _api_routes(client: AppClient) -> Iterator[tuple[str, APIRoute]]:
    """("METHOD /path", route) for every API route, through included routers too.

    Recent FastAPI includes routers lazily (`app.routes` holds wrappers); its public
    `iter_route_contexts` flattens them. Older versions list `APIRoute`s directly.
    """
    iter_contexts = getattr(fastapi.routing, "iter_route_contexts", None)
    if iter_contexts is None:
        pairs = [(r.path, r.methods, r) for r in client.app.routes if isinstance(r, APIRoute)]
    else:
        pairs = [
            (c.path, c.methods, c.original_route)
            for c in iter_contexts(client.app.routes)
            if isinstance(c.original_route, APIRoute)
        ]
    for path, methods, route in pairs:
        for method in sorted(methods or ()):
            yield f"{method} {path}", route


async def test_matrix_names_exactly_the_routes_the_app_serves(client):
    served = {key for key, _route in _api_routes(client)}
    assert served, "found no API routes: the route walk is broken"
    missing = sorted(served - MATRIX.keys())
    stale = sorted(MATRIX.keys() - served)
    assert not missing, f"routes without a row in MATRIX (add one): {missing}"
    assert not stale, f"MATRIX rows for routes the app does not serve: {stale}"


def _declared_permissions(route: APIRoute) -> set[str]:
    found: set[str] = set()
    stack = list(route.dependant.dependencies)
    while stack:
        dep = stack.pop()
        perms = getattr(dep.call, "required_permissions", None)
        if perms:
            found |= {str(p) for p in perms}
        stack.extend(dep.dependencies)
    return found


async def test_every_protected_route_declares_its_permission(client):
    checked = 0
    for key, route in _api_routes(client):
        row = MATRIX.get(key)
        if row is None:
            continue  # reported by the test above
        declared = _declared_permissions(route)
        if row.public:
            assert not declared, f"{key} is PUBLIC yet requires {declared}"
        else:
            assert declared, f"{key} declares no permission (depend on require(...))"
        checked += 1
    assert checked == len(MATRIX)


def _url(session: Session, path: str, owner: Organisation) -> str:
    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        assert name in PATH_PARAMS, f"no resolver for path parameter {{{name}}} in PATH_PARAMS"
        return PATH_PARAMS[name](session, owner)

    return re.sub(r"\{(\w+)\}", fill, path)


async def _call(
    client: AppClient,
    session: Session,
    route: str,
    row: Row,
    actor: Actor | None,
    owner: Organisation,
):
    method, path = route.split(" ", 1)
    url = _url(session, path, owner)
    session.commit()
    headers = actor.headers if actor is not None else {}
    kwargs: dict[str, Any] = {"headers": headers}
    if method in ("POST", "PATCH", "PUT"):
        if route == "POST /v1/oauth/token":
            kwargs["data"] = {}
        else:
            kwargs["json"] = row.body(owner) if row.body is not None else {}
    return await client.request(method, url, **kwargs)


def _problem_type(response) -> str | None:
    if response.headers.get("content-type", "").startswith("application/problem+json"):
        return response.json().get("type")
    return None


@pytest.mark.parametrize("route", sorted(MATRIX))
async def test_route_allows_exactly_the_expected_roles(route, network: Network, client, session):
    row = MATRIX[route]
    failures: list[str] = []

    # Without a token.
    response = await _call(client, session, route, row, None, network.org_a)
    if row.public:
        if response.status_code in (401, 403):
            failures.append(f"anonymous: expected access, got {response.status_code}")
    elif response.status_code != 401:
        failures.append(f"anonymous: expected 401, got {response.status_code}")

    for role, label in _ROLE_ACTOR.items():
        actor = network.actors[label]
        response = await _call(client, session, route, row, actor, actor.org)
        status = response.status_code
        if role in row.roles:
            if status in (401, 403):
                failures.append(f"{role}: expected allowed, got {status} {response.text[:200]}")
            elif row.body is not None and row.succeeds and not 200 <= status < 300:
                failures.append(f"{role}: expected 2xx, got {status} {response.text[:200]}")
        elif status != 403 or _problem_type(response) != "urn:refcheck:problem:permission-denied":
            failures.append(f"{role}: expected 403 permission-denied, got {status}")

    if row.own_org_only:
        for role in MEMBERS:
            if role not in row.roles:
                continue
            actor = network.actors[_ROLE_ACTOR[role]]
            response = await _call(client, session, route, row, actor, network.org_b)
            if response.status_code != 404:
                failures.append(
                    f"{role} of org-a on org-b's resource: expected 404, got {response.status_code}"
                )

    assert not failures, f"{route}:\n  " + "\n  ".join(failures)
