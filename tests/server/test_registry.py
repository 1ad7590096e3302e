"""The MoU registry: organisations, principals, the directory, and the MoU gate."""

from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select

from server.audit.models import AuditEntry
from server.auth.permissions import Role
from server.errors import MouInactive
from server.registry.models import Membership, OrgStatus
from server.registry.services import org_under_mou, require_mou
from tests.factories import (
    OrgKeys,
    auth_headers,
    ed25519_public_hex,
    make_org,
    make_principal,
)

pytestmark = pytest.mark.anyio


def _org_body(**overrides):
    keys = OrgKeys.generate()
    body = {
        "legal_name": "Yayasan Peduli Anak",
        "short_name": "ypa",
        "country": "ID",
        "org_type": "national_ngo",
        "membership": "member",
        "status": "active",
        "mou_version": "MoU-2026-01",
        "mou_sha256": "ab" * 32,
        "mou_signed_on": "2026-01-15",
        "mou_expires_on": "2029-01-14",
        "data_sharing_agreement": True,
        "legal_basis": "legal_obligation",
        "may_register": True,
        "may_check": False,
        "focal_points": [{"name": "Ibu Sari", "email": "pseah@ypa.example"}],
        "x25519_public_key": keys.x25519_public_hex,
        "ed25519_public_key": keys.ed25519_public_hex,
    }
    body.update(overrides)
    return body


# --- organisations ---------------------------------------------------------------------------


async def test_admin_registers_an_organisation_with_its_mou(network, client, session):
    body = _org_body()
    response = await client.post("/v1/orgs", json=body, headers=network.admin.headers)
    assert response.status_code == 201, response.text
    org = response.json()
    for key, value in body.items():
        if key == "focal_points":
            assert org[key] == [{"name": "Ibu Sari", "email": "pseah@ypa.example", "phone": None}]
        else:
            assert org[key] == value, key
    entry = session.scalars(select(AuditEntry).where(AuditEntry.object_id == org["id"])).one()
    assert entry.action == "org.create" and entry.actor_principal_id == network.admin.id


async def test_new_organisation_defaults_to_pending_with_no_permissions(network, client):
    response = await client.post(
        "/v1/orgs",
        json={
            "legal_name": "Palang Merah",
            "short_name": "pm",
            "org_type": "red_cross_red_crescent",
        },
        headers=network.admin.headers,
    )
    org = response.json()
    assert (org["status"], org["may_register"], org["may_check"]) == ("pending", False, False)


async def test_duplicate_short_name_is_a_conflict(network, client):
    response = await client.post(
        "/v1/orgs", json=_org_body(short_name="org-a"), headers=network.admin.headers
    )
    assert response.status_code == 409
    assert response.json()["type"] == "urn:refcheck:problem:short-name-taken"


async def test_second_secretariat_is_refused(network, client):
    response = await client.post(
        "/v1/orgs",
        json=_org_body(org_type="network_secretariat"),
        headers=network.admin.headers,
    )
    assert response.status_code == 422
    assert response.json()["type"] == "urn:refcheck:problem:role-not-allowed"


async def test_legal_basis_outside_the_policy_is_refused(network, client):
    response = await client.post(
        "/v1/orgs", json=_org_body(legal_basis="vital_interests"), headers=network.admin.headers
    )
    assert response.status_code == 422
    assert response.json()["rule"] == "legal_basis"


async def test_mou_expiring_before_it_was_signed_is_refused(network, client):
    response = await client.post(
        "/v1/orgs",
        json=_org_body(mou_signed_on="2026-02-01", mou_expires_on="2026-01-01"),
        headers=network.admin.headers,
    )
    assert response.status_code == 422
    assert response.json()["rule"] == "mou_dates"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("short_name", "Has Spaces"),
        ("country", "idn"),
        ("mou_sha256", "AB" * 32),
        ("x25519_public_key", "00" * 32),
        ("ed25519_public_key", "abcd"),
        ("org_type", "company"),
        ("unknown_field", True),
    ],
)
async def test_malformed_organisation_fields_are_refused(network, client, field, value):
    response = await client.post(
        "/v1/orgs", json=_org_body(**{field: value}), headers=network.admin.headers
    )
    assert response.status_code == 422
    assert ["body", field] in [e["loc"] for e in response.json()["errors"]]


async def test_patch_changes_only_the_fields_sent(network, client):
    url = f"/v1/orgs/{network.org_b.id}"
    response = await client.patch(
        url,
        json={"mou_version": "MoU-2027-01", "mou_expires_on": None, "may_check": False},
        headers=network.admin.headers,
    )
    assert response.status_code == 200, response.text
    org = response.json()
    assert org["mou_version"] == "MoU-2027-01"
    assert org["mou_expires_on"] is None
    assert org["may_check"] is False
    assert org["may_register"] is True
    assert org["legal_name"] == network.org_b.legal_name


async def test_patch_cannot_null_a_required_field(network, client):
    response = await client.patch(
        f"/v1/orgs/{network.org_b.id}", json={"status": None}, headers=network.admin.headers
    )
    assert response.status_code == 422


@pytest.mark.parametrize(
    ("start", "target", "allowed"),
    [
        ("pending", "active", True),
        ("active", "suspended", True),
        ("suspended", "active", True),
        ("active", "withdrawn", True),
        ("withdrawn", "active", False),
        ("suspended", "pending", False),
    ],
)
async def test_status_transitions(network, client, session, start, target, allowed):
    org = make_org(session, "org-t", status=start)
    session.commit()
    response = await client.patch(
        f"/v1/orgs/{org.id}", json={"status": target}, headers=network.admin.headers
    )
    if allowed:
        assert response.status_code == 200 and response.json()["status"] == target
    else:
        assert response.status_code == 409
        assert response.json()["type"] == "urn:refcheck:problem:status-transition"


async def test_unknown_organisation_answers_404(network, client):
    response = await client.get(
        "/v1/orgs/00000000-0000-4000-8000-000000000000", headers=network.admin.headers
    )
    assert response.status_code == 404


async def test_member_reads_its_own_organisation_but_not_another(network, client):
    own = await client.get(f"/v1/orgs/{network.org_a.id}", headers=network.a_focal.headers)
    assert own.status_code == 200 and own.json()["short_name"] == "org-a"
    other = await client.get(f"/v1/orgs/{network.org_b.id}", headers=network.a_focal.headers)
    missing = await client.get(
        "/v1/orgs/00000000-0000-4000-8000-000000000000", headers=network.a_focal.headers
    )
    # A foreign id and an unknown id look exactly alike.
    assert other.status_code == missing.status_code == 404
    assert other.json()["detail"] == missing.json()["detail"]


async def test_admin_lists_every_organisation(network, client):
    response = await client.get("/v1/orgs", headers=network.admin.headers)
    names = [o["short_name"] for o in response.json()["items"]]
    assert names == sorted(names)
    assert {"secretariat", "org-a", "org-b"} <= set(names)


async def test_directory_lists_members_and_their_public_keys_only(network, client):
    response = await client.get("/v1/directory", headers=network.b_hr.headers)
    items = {i["short_name"]: i for i in response.json()["items"]}
    assert "secretariat" not in items
    assert items["org-a"]["x25519_public_key"] == network.org_a_keys.x25519_public_hex
    assert items["org-a"]["ed25519_public_key"] == network.org_a_keys.ed25519_public_hex
    assert set(items["org-a"]) == {
        "id",
        "short_name",
        "legal_name",
        "status",
        "x25519_public_key",
        "ed25519_public_key",
    }


# --- principals ------------------------------------------------------------------------------


def _principal_body(roles, kind="service"):
    return {
        "name": "HR system",
        "kind": kind,
        "roles": roles,
        "auth_public_key": ed25519_public_hex(Ed25519PrivateKey.generate()),
    }


async def test_admin_adds_a_principal_that_can_sign_in(network, client, session):
    key = Ed25519PrivateKey.generate()
    body = _principal_body(["hr_checker"]) | {"auth_public_key": ed25519_public_hex(key)}
    response = await client.post(
        f"/v1/orgs/{network.org_b.id}/principals", json=body, headers=network.admin.headers
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["org_id"] == network.org_b.id and created["active"] is True
    from server.registry.models import Principal

    principal = session.get(Principal, created["id"])
    assert principal is not None
    headers = await auth_headers(client, principal, key)
    me = (await client.get("/v1/me", headers=headers)).json()
    assert me["roles"] == ["hr_checker"] and me["org_short_name"] == "org-b"
    listed = await client.get(
        f"/v1/orgs/{network.org_b.id}/principals", headers=network.admin.headers
    )
    assert created["id"] in [p["id"] for p in listed.json()["items"]]


@pytest.mark.parametrize("role", ["network_admin", "auditor"])
async def test_network_roles_are_refused_outside_the_secretariat(network, client, role):
    response = await client.post(
        f"/v1/orgs/{network.org_a.id}/principals",
        json=_principal_body([role], kind="person"),
        headers=network.admin.headers,
    )
    assert response.status_code == 422
    assert response.json()["type"] == "urn:refcheck:problem:role-not-allowed"


@pytest.mark.parametrize("role", ["focal_point", "hr_checker"])
async def test_member_roles_are_refused_in_the_secretariat(network, client, role):
    response = await client.post(
        f"/v1/orgs/{network.secretariat.id}/principals",
        json=_principal_body([role]),
        headers=network.admin.headers,
    )
    assert response.status_code == 422


async def test_admin_adds_another_admin_to_the_secretariat(network, client):
    response = await client.post(
        f"/v1/orgs/{network.secretariat.id}/principals",
        json=_principal_body(["network_admin"], kind="person"),
        headers=network.admin.headers,
    )
    assert response.status_code == 201


async def test_principal_for_an_unknown_organisation_is_404(network, client):
    response = await client.post(
        "/v1/orgs/00000000-0000-4000-8000-000000000000/principals",
        json=_principal_body(["hr_checker"]),
        headers=network.admin.headers,
    )
    assert response.status_code == 404


async def test_deactivated_principal_is_signed_out_at_once(network, client):
    response = await client.post(
        f"/v1/principals/{network.b_hr.id}/deactivate", headers=network.admin.headers
    )
    assert response.status_code == 200
    assert response.json()["active"] is False
    assert response.json()["deactivated_at"] is not None
    me = await client.get("/v1/me", headers=network.b_hr.headers)
    assert me.status_code == 401


async def test_last_active_admin_cannot_be_deactivated(network, client):
    response = await client.post(
        f"/v1/principals/{network.admin.id}/deactivate", headers=network.admin.headers
    )
    assert response.status_code == 409
    assert response.json()["type"] == "urn:refcheck:problem:last-admin"


async def test_admin_can_be_deactivated_when_another_remains(network, client, session):
    other, _ = make_principal(session, network.secretariat, [Role.NETWORK_ADMIN])
    session.commit()
    response = await client.post(
        f"/v1/principals/{other.id}/deactivate", headers=network.admin.headers
    )
    assert response.status_code == 200


async def test_me_lists_roles_and_permissions(network, client):
    me = (await client.get("/v1/me", headers=network.auditor.headers)).json()
    assert me["roles"] == ["auditor"]
    assert "audit:entry:read" in me["permissions"]
    assert "registry:org:update" not in me["permissions"]


# --- the MoU gate ----------------------------------------------------------------------------


def test_active_member_with_valid_mou_may_register_and_check(session, clock):
    org = make_org(session, "org-ok", today=clock.today())
    require_mou(session, org.id, "register", clock.today())
    require_mou(session, org.id, "check", clock.today())
    assert org_under_mou(session, org.id, "register", clock.today()) is org


def test_the_mou_gate_reads_what_is_stored_not_an_unsaved_change(session, clock):
    """`require_mou` reads the MoU's columns from the database: a change to the organisation
    counts once it is flushed, as every service that changes one does."""
    org = make_org(session, "org-flushed", today=clock.today())
    org.may_check = False
    session.flush()
    with pytest.raises(MouInactive, match="does not permit checks"):
        require_mou(session, org.id, "check", clock.today())
    require_mou(session, org.id, "register", clock.today())


def test_mou_expiring_today_is_still_valid(session, clock):
    org = make_org(session, "org-edge", mou_expires_on=clock.today())
    require_mou(session, org.id, "check", clock.today())
    with pytest.raises(MouInactive, match="expired"):
        require_mou(session, org.id, "check", clock.today() + timedelta(days=1))


@pytest.mark.parametrize(
    ("overrides", "action", "reason"),
    [
        ({"status": OrgStatus.SUSPENDED}, "check", "status is suspended"),
        ({"status": OrgStatus.WITHDRAWN}, "register", "status is withdrawn"),
        ({"status": OrgStatus.PENDING}, "check", "status is pending"),
        ({"membership": Membership.OBSERVER}, "check", "observers"),
        ({"mou_sha256": None}, "register", "no signed MoU"),
        ({"mou_signed_on": None}, "check", "no signed MoU"),
        ({"data_sharing_agreement": False}, "check", "data-sharing agreement"),
        ({"legal_basis": None}, "register", "legal basis"),
        ({"may_register": False}, "register", "does not permit registering"),
        ({"may_check": False}, "check", "does not permit checks"),
    ],
)
def test_mou_gate_refuses_and_says_why(session, clock, overrides, action, reason):
    org = make_org(session, "org-gated", today=clock.today(), **overrides)
    with pytest.raises(MouInactive) as info:
        require_mou(session, org.id, action, clock.today())
    assert reason in info.value.detail
    assert info.value.status == 403 and info.value.slug == "mou-inactive"


def test_expired_mou_is_refused(session, clock):
    org = make_org(session, "org-old", mou_expires_on=clock.today() - timedelta(days=1))
    with pytest.raises(MouInactive, match="MoU expired on"):
        require_mou(session, org.id, "register", clock.today())


def test_permission_for_one_action_does_not_grant_the_other(session, clock):
    org = make_org(session, "org-half", today=clock.today(), may_check=False)
    require_mou(session, org.id, "register", clock.today())
    with pytest.raises(MouInactive):
        require_mou(session, org.id, "check", clock.today())


def test_unknown_organisation_fails_the_mou_gate(session, clock):
    with pytest.raises(MouInactive, match="not in the registry"):
        require_mou(session, "00000000-0000-4000-8000-000000000000", "check", clock.today())


async def test_secretariat_never_passes_the_mou_gate(network, session, clock):
    for action in ("register", "check"):
        with pytest.raises(MouInactive):
            require_mou(session, network.secretariat.id, action, clock.today())
