"""`/v1/cases`: registration refusals (each names its rule), idempotency, atomicity, and the
focal point's own-organisation list, read, re-date and withdraw."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from protocol.hazmat.ristretto255 import IDENTITY
from protocol.pseudonym import Handle, open_handle, tag
from server.audit.models import AuditEntry
from server.cases.models import Case, IdempotencyRecord, Pseudonym
from server.context import AppContext
from server.registry.models import OrgStatus
from tests.blindflow import case_body
from tests.conftest import MutableClock
from tests.factories import AppClient, Network
from tests.server.blindmatch.conftest import Prepared

pytestmark = pytest.mark.anyio


def _count(session: Session, model: type[Any]) -> int:
    session.expire_all()
    return int(session.scalar(select(func.count()).select_from(model)) or 0)


async def _post(client: AppClient, network: Network, body: dict[str, Any], **headers: str) -> Any:
    return await client.post("/v1/cases", headers={**network.a_focal.headers, **headers}, json=body)


def _body(prepared: Prepared, clock: MutableClock, **overrides: Any) -> dict[str, Any]:
    pseudonyms = overrides.pop("pseudonyms", prepared.pseudonyms)
    key_id = overrides.pop("key_id", prepared.key_id)
    return case_body(key_id, pseudonyms, today=clock.today(), **overrides)


async def test_registration_stores_pseudonyms_with_tags_and_sealed_handles(
    client: AppClient, network: Network, prepared: Prepared, clock: MutableClock, session: Session
) -> None:
    response = await _post(client, network, _body(prepared, clock))
    assert response.status_code == 201, response.text
    case = response.json()
    assert case["org_id"] == network.org_a.id
    assert case["status"] == "active"
    assert case["pseudonym_count"] == len(prepared.pseudonyms)
    assert case["withdrawn_at"] is None

    rows = session.scalars(select(Pseudonym).where(Pseudonym.case_id == case["id"])).all()
    assert len(rows) == len(prepared.pseudonyms)
    sent = {bytes.fromhex(p["element"]): p for p in prepared.pseudonyms}
    for row in rows:
        p = sent[row.element]
        assert (row.kind, row.strength, row.bucket) == (p["kind"], p["strength"], p["bucket"])
        assert row.tag == tag(row.element)
        assert open_handle(row.element, row.sealed_handle) == Handle(
            entry_id=row.id,
            case_id=case["id"],
            holder_org_id=network.org_a.id,
            holder_org_name="org-a",
            kind=row.kind,
            strength=row.strength,
        )
    audit = session.scalars(select(AuditEntry).where(AuditEntry.action == "case.register")).one()
    assert audit.object_id == case["id"]
    assert audit.details == {"pseudonyms": len(prepared.pseudonyms)}


@pytest.mark.parametrize(
    ("overrides", "rule"),
    [
        ({"legal_basis": "vital_interests"}, "legal_basis"),
        ({"legal_basis": "gossip"}, "legal_basis"),
        ({"category": "fraud"}, "category"),
        ({"finding": "under_investigation"}, "finding"),
        ({"finding": "alleged"}, "finding"),
        ({"sanction": "warning"}, "sanction"),
    ],
)
async def test_registration_outside_policy_is_refused_naming_the_rule(
    client: AppClient,
    network: Network,
    prepared: Prepared,
    clock: MutableClock,
    session: Session,
    overrides: dict[str, Any],
    rule: str,
) -> None:
    response = await _post(client, network, _body(prepared, clock, **overrides))
    assert response.status_code == 422
    assert response.json()["type"] == "urn:refcheck:problem:policy-violation"
    assert response.json()["rule"] == rule
    assert _count(session, Case) == 0


async def test_under_investigation_is_accepted_only_when_policy_allows_it(
    client: AppClient, network: Network, prepared: Prepared, clock: MutableClock, ctx: AppContext
) -> None:
    ctx.policy = ctx.policy.model_copy(update={"allow_under_investigation": True})
    response = await _post(client, network, _body(prepared, clock, finding="under_investigation"))
    assert response.status_code == 201, response.text
    assert response.json()["finding"] == "under_investigation"


async def test_retention_beyond_the_category_maximum_is_refused(
    client: AppClient, network: Network, prepared: Prepared, clock: MutableClock, ctx: AppContext
) -> None:
    finding = clock.today() - timedelta(days=30)
    years = ctx.policy.categories["sexual_harassment"].max_retention_years  # type: ignore[index]
    limit = finding.replace(year=finding.year + years)
    too_long = _body(
        prepared,
        clock,
        category="sexual_harassment",
        finding_date=finding.isoformat(),
        subject_notified_on=finding.isoformat(),
        retention_until=(limit + timedelta(days=1)).isoformat(),
    )
    response = await _post(client, network, too_long)
    assert response.status_code == 422
    assert response.json()["rule"] == "retention"
    assert response.json()["max_retention_until"] == limit.isoformat()

    # The limit itself is allowed, and a child victim allows longer.
    response = await _post(client, network, {**too_long, "retention_until": limit.isoformat()})
    assert response.status_code == 201, response.text
    response = await _post(client, network, {**too_long, "child_victim": True})
    assert response.status_code == 201, response.text


async def test_retention_in_the_past_is_refused(
    client: AppClient, network: Network, prepared: Prepared, clock: MutableClock
) -> None:
    yesterday = (clock.today() - timedelta(days=1)).isoformat()
    response = await _post(client, network, _body(prepared, clock, retention_until=yesterday))
    assert response.status_code == 422
    assert response.json()["rule"] == "retention"


@pytest.mark.parametrize("field", ["finding_date", "subject_notified_on"])
async def test_dates_in_the_future_are_refused(
    client: AppClient, network: Network, prepared: Prepared, clock: MutableClock, field: str
) -> None:
    tomorrow = (clock.today() + timedelta(days=1)).isoformat()
    response = await _post(client, network, _body(prepared, clock, **{field: tomorrow}))
    assert response.status_code == 422
    assert response.json()["type"] == "urn:refcheck:problem:invalid-request"


async def test_subject_notified_before_the_finding_is_refused(
    client: AppClient, network: Network, prepared: Prepared, clock: MutableClock
) -> None:
    body = _body(prepared, clock)
    early = (date.fromisoformat(body["finding_date"]) - timedelta(days=1)).isoformat()
    response = await _post(client, network, {**body, "subject_notified_on": early})
    assert response.status_code == 422


async def test_too_many_pseudonyms_are_refused(
    client: AppClient, network: Network, prepared: Prepared, clock: MutableClock, ctx: AppContext
) -> None:
    ctx.policy = ctx.policy.model_copy(update={"max_keys_per_check": 2})
    response = await _post(client, network, _body(prepared, clock))
    assert response.status_code == 422
    assert response.json()["rule"] == "keys_per_case"


async def test_bucket_outside_the_network_bucket_size_is_refused(
    client: AppClient, network: Network, prepared: Prepared, clock: MutableClock, ctx: AppContext
) -> None:
    pseudonyms = [dict(p) for p in prepared.pseudonyms]
    pseudonyms[1]["bucket"] = 1 << ctx.policy.bucket_bits
    response = await _post(client, network, _body(prepared, clock, pseudonyms=pseudonyms))
    assert response.status_code == 422
    assert response.json()["rule"] == "bucket_bits"
    assert response.json()["index"] == 1


async def test_invalid_or_repeated_element_is_refused_and_nothing_is_stored(
    client: AppClient, network: Network, prepared: Prepared, clock: MutableClock, session: Session
) -> None:
    last = len(prepared.pseudonyms) - 1
    identity = [dict(p) for p in prepared.pseudonyms]
    identity[last]["element"] = IDENTITY.hex()
    repeated = [dict(p) for p in prepared.pseudonyms]
    repeated[last]["element"] = repeated[0]["element"]
    for pseudonyms in (identity, repeated):
        response = await _post(client, network, _body(prepared, clock, pseudonyms=pseudonyms))
        assert response.status_code == 422
        assert response.json()["type"] == "urn:refcheck:problem:invalid-element"
        assert response.json()["index"] == last
    assert _count(session, Case) == 0
    assert _count(session, Pseudonym) == 0


async def test_stale_key_id_is_refused(
    client: AppClient, network: Network, prepared: Prepared, clock: MutableClock
) -> None:
    response = await _post(client, network, _body(prepared, clock, key_id="0" * 16))
    assert response.status_code == 409
    assert response.json()["type"] == "urn:refcheck:problem:key-mismatch"


@pytest.mark.parametrize(
    "change",
    [
        {"status": OrgStatus.SUSPENDED},
        {"may_register": False},
        {"data_sharing_agreement": False},
    ],
)
async def test_registration_without_an_active_mou_is_refused(
    client: AppClient,
    network: Network,
    prepared: Prepared,
    clock: MutableClock,
    session: Session,
    change: dict[str, Any],
) -> None:
    for name, value in change.items():
        setattr(network.org_a, name, value)
    session.commit()
    response = await _post(client, network, _body(prepared, clock))
    assert response.status_code == 403
    assert response.json()["type"] == "urn:refcheck:problem:mou-inactive"


async def test_expired_mou_is_refused(
    client: AppClient, network: Network, prepared: Prepared, clock: MutableClock, session: Session
) -> None:
    network.org_a.mou_expires_on = clock.today() - timedelta(days=1)
    session.commit()
    response = await _post(client, network, _body(prepared, clock))
    assert response.status_code == 403
    assert response.json()["type"] == "urn:refcheck:problem:mou-inactive"


async def test_hr_checker_cannot_register(
    client: AppClient, network: Network, prepared: Prepared, clock: MutableClock
) -> None:
    response = await client.post(
        "/v1/cases", headers=network.a_hr.headers, json=_body(prepared, clock)
    )
    assert response.status_code == 403
    assert response.json()["type"] == "urn:refcheck:problem:permission-denied"


async def test_idempotency_key_makes_a_retry_land_once(
    client: AppClient, network: Network, prepared: Prepared, clock: MutableClock, session: Session
) -> None:
    body = _body(prepared, clock)
    first = await _post(client, network, body, **{"Idempotency-Key": "reg-7f3a"})
    second = await _post(client, network, body, **{"Idempotency-Key": "reg-7f3a"})
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert _count(session, Case) == 1
    assert _count(session, Pseudonym) == len(prepared.pseudonyms)
    assert _count(session, IdempotencyRecord) == 1


async def test_idempotency_key_reused_with_another_body_is_refused(
    client: AppClient, network: Network, prepared: Prepared, clock: MutableClock, session: Session
) -> None:
    first = await _post(client, network, _body(prepared, clock), **{"Idempotency-Key": "k1"})
    assert first.status_code == 201
    other = _body(prepared, clock, sanction="contract_termination")
    second = await _post(client, network, other, **{"Idempotency-Key": "k1"})
    assert second.status_code == 409
    assert second.json()["type"] == "urn:refcheck:problem:idempotency-conflict"
    assert _count(session, Case) == 1


async def test_idempotency_keys_are_per_organisation(
    client: AppClient, network: Network, prepared: Prepared, clock: MutableClock, session: Session
) -> None:
    body = _body(prepared, clock)
    a = await _post(client, network, body, **{"Idempotency-Key": "shared"})
    b = await client.post(
        "/v1/cases", headers={**network.b_focal.headers, "Idempotency-Key": "shared"}, json=body
    )
    assert a.status_code == b.status_code == 201
    assert a.json()["id"] != b.json()["id"]


async def test_failure_after_rows_were_written_stores_nothing(
    client: AppClient,
    network: Network,
    prepared: Prepared,
    clock: MutableClock,
    session: Session,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A crash between writing the pseudonyms and committing (here: the statistics counter
    failing) must leave no case, no pseudonym and no audit entry behind."""
    import server.cases.services as services

    def broken(*_args: Any, **_kwargs: Any) -> None:
        raise RuntimeError("simulated failure")

    monkeypatch.setattr(services, "increment", broken)
    # A client that gets the 500 answer instead of the re-raised exception.
    transport = httpx.ASGITransport(app=client.app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as raw:
        response = await raw.post(
            "/v1/cases",
            headers={**network.a_focal.headers, "Idempotency-Key": "x"},
            json=_body(prepared, clock),
        )
    assert response.status_code == 500
    assert _count(session, Case) == 0
    assert _count(session, Pseudonym) == 0
    assert _count(session, IdempotencyRecord) == 0
    assert (
        session.scalars(select(AuditEntry).where(AuditEntry.action == "case.register")).all() == []
    )


async def test_cases_are_listed_and_read_by_their_own_organisation_only(
    client: AppClient, network: Network, prepared: Prepared, clock: MutableClock
) -> None:
    created = (await _post(client, network, _body(prepared, clock))).json()
    listed = await client.get("/v1/cases", headers=network.a_focal.headers)
    assert [c["id"] for c in listed.json()["items"]] == [created["id"]]
    read = await client.get(f"/v1/cases/{created['id']}", headers=network.a_focal.headers)
    assert read.json() == created

    foreign = await client.get(f"/v1/cases/{created['id']}", headers=network.b_focal.headers)
    assert foreign.status_code == 404
    assert foreign.json()["type"] == "urn:refcheck:problem:not-found"
    assert (await client.get("/v1/cases", headers=network.b_focal.headers)).json()["items"] == []
    for path, body in ((f"/v1/cases/{created['id']}/withdraw", {"reason": "other"}),):
        response = await client.post(path, headers=network.b_focal.headers, json=body)
        assert response.status_code == 404
    response = await client.patch(
        f"/v1/cases/{created['id']}",
        headers=network.b_focal.headers,
        json={"retention_until": clock.today().isoformat()},
    )
    assert response.status_code == 404


async def test_withdrawal_deletes_the_pseudonyms_and_is_repeatable(
    client: AppClient, network: Network, prepared: Prepared, clock: MutableClock, session: Session
) -> None:
    created = (await _post(client, network, _body(prepared, clock))).json()
    path = f"/v1/cases/{created['id']}/withdraw"
    first = await client.post(
        path, headers=network.a_focal.headers, json={"reason": "appeal_upheld", "note": "ref 12"}
    )
    assert first.status_code == 200
    withdrawn = first.json()
    assert withdrawn["status"] == "withdrawn"
    assert withdrawn["withdrawal_reason"] == "appeal_upheld"
    assert withdrawn["withdrawal_note"] == "ref 12"
    assert withdrawn["pseudonym_count"] == 0
    assert _count(session, Pseudonym) == 0

    again = await client.post(path, headers=network.a_focal.headers, json={"reason": "other"})
    assert again.status_code == 200
    assert again.json() == withdrawn

    listed = await client.get("/v1/cases?status=withdrawn", headers=network.a_focal.headers)
    assert [c["id"] for c in listed.json()["items"]] == [created["id"]]
    active = await client.get("/v1/cases?status=active", headers=network.a_focal.headers)
    assert active.json()["items"] == []


async def test_withdrawal_needs_a_known_reason(
    client: AppClient, network: Network, prepared: Prepared, clock: MutableClock
) -> None:
    created = (await _post(client, network, _body(prepared, clock))).json()
    response = await client.post(
        f"/v1/cases/{created['id']}/withdraw",
        headers=network.a_focal.headers,
        json={"reason": "changed_our_mind"},
    )
    assert response.status_code == 422


async def test_withdrawal_is_allowed_even_when_the_mou_has_lapsed(
    client: AppClient, network: Network, prepared: Prepared, clock: MutableClock, session: Session
) -> None:
    created = (await _post(client, network, _body(prepared, clock))).json()
    network.org_a.status = OrgStatus.SUSPENDED
    session.commit()
    response = await client.post(
        f"/v1/cases/{created['id']}/withdraw",
        headers=network.a_focal.headers,
        json={"reason": "rectification"},
    )
    assert response.status_code == 200


async def test_retention_can_be_shortened_and_lengthened_only_within_policy(
    client: AppClient, network: Network, prepared: Prepared, clock: MutableClock, ctx: AppContext
) -> None:
    created = (await _post(client, network, _body(prepared, clock))).json()
    path = f"/v1/cases/{created['id']}"
    shorter = (clock.today() + timedelta(days=10)).isoformat()
    response = await client.patch(
        path, headers=network.a_focal.headers, json={"retention_until": shorter}
    )
    assert response.status_code == 200
    assert response.json()["retention_until"] == shorter

    finding = date.fromisoformat(created["finding_date"])
    years = ctx.policy.categories["sexual_abuse"].max_retention_years  # type: ignore[index]
    limit = finding.replace(year=finding.year + years)
    response = await client.patch(
        path, headers=network.a_focal.headers, json={"retention_until": limit.isoformat()}
    )
    assert response.status_code == 200
    response = await client.patch(
        path,
        headers=network.a_focal.headers,
        json={"retention_until": (limit + timedelta(days=1)).isoformat()},
    )
    assert response.status_code == 422
    assert response.json()["rule"] == "retention"
    past = (clock.today() - timedelta(days=1)).isoformat()
    response = await client.patch(
        path, headers=network.a_focal.headers, json={"retention_until": past}
    )
    assert response.status_code == 422
    assert response.json()["rule"] == "retention"


async def test_lengthening_retention_needs_the_mou_but_shortening_does_not(
    client: AppClient, network: Network, prepared: Prepared, clock: MutableClock, session: Session
) -> None:
    created = (await _post(client, network, _body(prepared, clock))).json()
    network.org_a.may_register = False
    session.commit()
    path = f"/v1/cases/{created['id']}"
    current = date.fromisoformat(created["retention_until"])
    longer = await client.patch(
        path,
        headers=network.a_focal.headers,
        json={"retention_until": (current + timedelta(days=1)).isoformat()},
    )
    assert longer.status_code == 403
    shorter = await client.patch(
        path,
        headers=network.a_focal.headers,
        json={"retention_until": (current - timedelta(days=1)).isoformat()},
    )
    assert shorter.status_code == 200


async def test_unknown_fields_are_refused(
    client: AppClient, network: Network, prepared: Prepared, clock: MutableClock
) -> None:
    response = await _post(client, network, {**_body(prepared, clock), "subject_name": "x"})
    assert response.status_code == 422
    assert response.json()["type"] == "urn:refcheck:problem:invalid-request"
