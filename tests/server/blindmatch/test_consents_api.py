"""`/v1/consents`: specific, time-limited consent receipts with a one-time lookup code, whose
HR details the server holds only sealed to the hiring organisation."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from protocol.consent_details import SEALED_SIZE, open_details
from server.audit.models import AuditEntry
from server.consents.models import Consent
from server.consents.services import lookup_code_sha256, normalise_lookup_code
from server.context import AppContext
from tests.blindflow import consent_body, record_consent
from tests.conftest import MutableClock
from tests.factories import AppClient, Network, ed25519_seed_hex

pytestmark = pytest.mark.anyio


async def _post(client: AppClient, network: Network, clock: MutableClock, **overrides: Any) -> Any:
    return await client.post(
        "/v1/consents", headers=network.b_hr.headers, json=consent_body(now=clock(), **overrides)
    )


async def test_consent_is_recorded_with_policy_defaults_and_a_one_time_lookup_code(
    client: AppClient, network: Network, clock: MutableClock, session: Session, ctx: AppContext
) -> None:
    created = await record_consent(client, network.b_hr.headers, now=clock())
    rule = ctx.policy.consent_purposes["recruitment"]  # type: ignore[index]
    assert created["status"] == "active"
    assert created["purpose"] == "recruitment"
    assert created["max_checks"] == rule.max_checks
    assert created["checks_used"] == 0
    assert (
        created["expires_on"]
        == (clock.today() + timedelta(days=rule.max_validity_days)).isoformat()
    )
    code = created["lookup_code"]
    assert isinstance(code, str) and len(normalise_lookup_code(code)) == 16

    row = session.get(Consent, created["id"])
    assert row is not None and row.org_id == network.org_b.id
    # Only a hash of the code is stored; reading the consent again never shows it.
    assert row.lookup_code_sha256 == lookup_code_sha256(code)
    assert code not in repr(vars(row))
    again = await client.get(f"/v1/consents/{created['id']}", headers=network.b_hr.headers)
    assert again.status_code == 200
    assert again.json()["lookup_code"] is None
    assert {k: v for k, v in again.json().items() if k != "lookup_code"} == {
        k: v for k, v in created.items() if k != "lookup_code"
    }
    audit = session.scalars(select(AuditEntry).where(AuditEntry.action == "consent.record")).one()
    assert audit.object_id == created["id"]
    assert audit.details == {"purpose": "recruitment", "max_checks": rule.max_checks}


async def test_lookup_codes_differ_and_tolerate_retyping(
    client: AppClient, network: Network, clock: MutableClock
) -> None:
    a = await record_consent(client, network.b_hr.headers, now=clock())
    b = await record_consent(client, network.b_hr.headers, now=clock())
    assert a["lookup_code"] != b["lookup_code"]
    code = a["lookup_code"]
    retyped = code.lower().replace("-", " ").replace("0", "o").replace("1", "l")
    assert lookup_code_sha256(retyped) == lookup_code_sha256(code)


@pytest.mark.parametrize(
    ("overrides", "rule"),
    [
        ({"purpose": "general_screening"}, "purpose"),
        ({"max_checks": 6}, "consent_checks"),
    ],
)
async def test_consent_outside_policy_is_refused_naming_the_rule(
    client: AppClient,
    network: Network,
    clock: MutableClock,
    overrides: dict[str, Any],
    rule: str,
) -> None:
    response = await _post(client, network, clock, **overrides)
    assert response.status_code == 422
    assert response.json()["type"] == "urn:refcheck:problem:policy-violation"
    assert response.json()["rule"] == rule


async def test_expiry_beyond_the_purpose_maximum_is_refused(
    client: AppClient, network: Network, clock: MutableClock, ctx: AppContext
) -> None:
    days = ctx.policy.consent_purposes["recruitment"].max_validity_days  # type: ignore[index]
    latest = clock.today() + timedelta(days=days)
    response = await _post(
        client, network, clock, expires_on=(latest + timedelta(days=1)).isoformat()
    )
    assert response.status_code == 422
    assert response.json()["rule"] == "consent_validity"
    response = await _post(client, network, clock, expires_on=latest.isoformat())
    assert response.status_code == 201


async def test_consent_given_long_ago_cannot_be_recorded_as_valid(
    client: AppClient, network: Network, clock: MutableClock
) -> None:
    """Consent is not retroactive: a receipt whose validity has already run out is refused."""
    response = await _post(
        client, network, clock, consented_at=(clock() - timedelta(days=200)).isoformat()
    )
    assert response.status_code == 422
    assert response.json()["rule"] == "consent_validity"


async def test_consent_in_the_future_is_refused(
    client: AppClient, network: Network, clock: MutableClock
) -> None:
    response = await _post(
        client, network, clock, consented_at=(clock() + timedelta(hours=1)).isoformat()
    )
    assert response.status_code == 422
    assert response.json()["type"] == "urn:refcheck:problem:invalid-request"


_SEALED = "ab" * SEALED_SIZE


@pytest.mark.parametrize(
    "overrides",
    [
        {"sealed_details": "ab" * (SEALED_SIZE - 1)},
        {"sealed_details": "ab" * (SEALED_SIZE + 1)},
        {"sealed_details": "AB" * SEALED_SIZE},
        {"sealed_details": "zz" * SEALED_SIZE},
        {"consented_at": "2026-01-01T10:00:00", "sealed_details": _SEALED},
        {"purpose": "Recruitment", "sealed_details": _SEALED},
    ],
)
async def test_malformed_receipt_is_refused(
    client: AppClient, network: Network, clock: MutableClock, overrides: dict[str, Any]
) -> None:
    response = await _post(client, network, clock, **overrides)
    assert response.status_code == 422
    assert response.json()["type"] == "urn:refcheck:problem:invalid-request"
    # Validation errors name the field, never echo the value.
    for value in overrides.values():
        if isinstance(value, str) and value:
            assert value not in response.text


@pytest.mark.parametrize(
    "field",
    [
        {"applicant_ref": "APP-000123"},
        {"position_ref": "POS-2026-017"},
        {"form_sha256": "ab" * 32},
        {"self_declared_finding": False},
    ],
)
async def test_details_in_the_clear_are_refused(
    client: AppClient, network: Network, clock: MutableClock, field: dict[str, Any]
) -> None:
    """The HR system's details travel only sealed: a client still sending one in the clear (an
    SDK of before the change) is refused, not stored."""
    body = {**consent_body(now=clock()), **field}
    response = await client.post("/v1/consents", headers=network.b_hr.headers, json=body)
    assert response.status_code == 422
    assert response.json()["type"] == "urn:refcheck:problem:invalid-request"


async def test_a_receipt_without_sealed_details_is_refused(
    client: AppClient, network: Network, clock: MutableClock
) -> None:
    body = consent_body(now=clock())
    del body["sealed_details"]
    response = await client.post("/v1/consents", headers=network.b_hr.headers, json=body)
    assert response.status_code == 422


async def test_the_server_keeps_the_sealed_details_as_sent_and_no_details_in_the_clear(
    client: AppClient, network: Network, clock: MutableClock, session: Session
) -> None:
    keys = network.org_b_keys
    body = consent_body(
        now=clock(),
        x25519_public=bytes(keys.x25519.public_key),
        signing_seed=bytes.fromhex(ed25519_seed_hex(keys.ed25519)),
        applicant_ref="APP-7731",
        self_declared_finding=True,
    )
    created = await record_consent(
        client,
        network.b_hr.headers,
        now=clock(),
        sealed_details=body["sealed_details"],
    )
    row = session.get(Consent, created["id"])
    assert row is not None
    assert row.sealed_details == bytes.fromhex(body["sealed_details"])
    assert len(row.sealed_details) == SEALED_SIZE
    assert created["sealed_details"] == body["sealed_details"]
    columns = {c.name for c in Consent.__table__.columns}
    assert not {"applicant_ref", "position_ref", "form_sha256", "self_declared_finding"} & columns
    assert "APP-7731" not in repr(vars(row))
    # What was sent opens with the organisation's key only, and says what the SDK sealed.
    opened = open_details(
        row.sealed_details,
        bytes(keys.x25519),
        bytes.fromhex(keys.ed25519_public_hex),
        purpose=row.purpose,
        consented_at=row.consented_at,
    )
    assert opened.signed
    assert (opened.details.applicant_ref, opened.details.self_declared_finding) == (
        "APP-7731",
        True,
    )


async def test_consent_recording_needs_an_mou_that_permits_checks(
    client: AppClient, network: Network, clock: MutableClock, session: Session
) -> None:
    network.org_b.may_check = False
    session.commit()
    response = await _post(client, network, clock)
    assert response.status_code == 403
    assert response.json()["type"] == "urn:refcheck:problem:mou-inactive"


async def test_focal_points_cannot_record_consents(
    client: AppClient, network: Network, clock: MutableClock
) -> None:
    response = await client.post(
        "/v1/consents", headers=network.b_focal.headers, json=consent_body(now=clock())
    )
    assert response.status_code == 403


async def test_withdrawn_consent_reads_as_withdrawn_and_withdrawal_is_repeatable(
    client: AppClient, network: Network, clock: MutableClock
) -> None:
    created = await record_consent(client, network.b_hr.headers, now=clock())
    path = f"/v1/consents/{created['id']}/withdraw"
    first = await client.post(path, headers=network.b_hr.headers)
    assert first.status_code == 200
    assert first.json()["status"] == "withdrawn"
    assert first.json()["withdrawn_at"] is not None
    second = await client.post(path, headers=network.b_hr.headers)
    assert second.json() == first.json()


async def test_consent_reads_as_expired_after_its_last_day(
    client: AppClient, network: Network, clock: MutableClock
) -> None:
    created = await record_consent(
        client, network.b_hr.headers, now=clock(), expires_on=clock.today().isoformat()
    )
    clock.advance(days=1)
    await network.b_hr.refresh(client)
    response = await client.get(f"/v1/consents/{created['id']}", headers=network.b_hr.headers)
    assert response.json()["status"] == "expired"


async def test_another_organisations_consent_answers_not_found(
    client: AppClient, network: Network, clock: MutableClock
) -> None:
    created = await record_consent(client, network.b_hr.headers, now=clock())
    read = await client.get(f"/v1/consents/{created['id']}", headers=network.a_hr.headers)
    assert read.status_code == 404
    withdraw = await client.post(
        f"/v1/consents/{created['id']}/withdraw", headers=network.a_hr.headers
    )
    assert withdraw.status_code == 404
