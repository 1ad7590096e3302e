"""`POST /v1/oprf/evaluate` within the daily evaluation quota: elements per organisation per UTC
day, refused with the time to the next UTC midnight, refusals never counted."""

from __future__ import annotations

from datetime import UTC, datetime, time
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from protocol.hazmat.ristretto255 import GENERATOR, IDENTITY
from server.audit.models import AuditEntry
from server.context import AppContext
from server.quotas.models import DailyUsage
from tests.conftest import MutableClock
from tests.factories import Actor, AppClient, Network

pytestmark = pytest.mark.anyio

QUOTA = 10


async def _evaluate(client: AppClient, actor: Actor, count: int, **body: Any) -> httpx.Response:
    payload: dict[str, Any] = {"purpose": "register", "blinded_elements": [GENERATOR.hex()] * count}
    payload.update(body)
    return await client.post("/v1/oprf/evaluate", headers=actor.headers, json=payload)


async def _at_ten_pm(client: AppClient, network: Network, clock: MutableClock) -> None:
    clock.set(datetime.combine(clock.today(), time(22), UTC))
    for actor in network.actors.values():
        await actor.refresh(client)


def _type(response: httpx.Response) -> str:
    problem_type = response.json()["type"]
    assert isinstance(problem_type, str)
    return problem_type.removeprefix("urn:refcheck:problem:")


async def test_quota_counts_elements_not_requests(
    client: AppClient, network: Network, clock: MutableClock, ctx: AppContext
) -> None:
    await _at_ten_pm(client, network, clock)
    ctx.policy = ctx.policy.model_copy(update={"daily_evaluation_quota": QUOTA})
    assert (await _evaluate(client, network.a_focal, 6)).status_code == 200
    # Two requests so far would be nothing for a per-request quota; 6 + 5 elements are too many.
    over = await _evaluate(client, network.a_focal, 5)
    assert over.status_code == 429
    assert _type(over) == "quota-exceeded"
    assert over.headers["Retry-After"] == str(2 * 3600)
    assert over.json()["retry_after_seconds"] == 2 * 3600
    assert "4 left" in over.json()["detail"]
    # What is left can still be used, to the last element.
    assert (await _evaluate(client, network.a_focal, 4)).status_code == 200
    assert (await _evaluate(client, network.a_focal, 1)).status_code == 429


async def test_refused_evaluations_are_not_counted(
    client: AppClient, network: Network, clock: MutableClock, ctx: AppContext
) -> None:
    ctx.policy = ctx.policy.model_copy(
        update={"daily_evaluation_quota": QUOTA, "max_keys_per_check": QUOTA}
    )
    invalid = await _evaluate(
        client, network.a_focal, 0, blinded_elements=[GENERATOR.hex(), IDENTITY.hex()]
    )
    assert _type(invalid) == "invalid-element"
    too_many = await _evaluate(client, network.a_focal, QUOTA + 1)
    assert too_many.json()["rule"] == "keys_per_case"
    assert (await _evaluate(client, network.a_focal, QUOTA - 3)).status_code == 200
    assert (await _evaluate(client, network.a_focal, 4)).status_code == 429
    # The 429 did not count its 4 elements either: 3 are left.
    assert (await _evaluate(client, network.a_focal, 3)).status_code == 200


async def test_quota_is_per_organisation_and_per_utc_day(
    client: AppClient, network: Network, clock: MutableClock, ctx: AppContext
) -> None:
    await _at_ten_pm(client, network, clock)
    ctx.policy = ctx.policy.model_copy(update={"daily_evaluation_quota": QUOTA})
    assert (await _evaluate(client, network.a_focal, QUOTA)).status_code == 200
    assert (await _evaluate(client, network.a_focal, 1)).status_code == 429
    # Another member's focal point is not held back by org-a's use...
    assert (await _evaluate(client, network.b_focal, QUOTA)).status_code == 200
    # ...and org-a evaluates again after UTC midnight.
    clock.advance(hours=2)
    await network.a_focal.refresh(client)
    assert (await _evaluate(client, network.a_focal, QUOTA)).status_code == 200


async def test_over_quota_is_refused_before_the_key_is_used(
    client: AppClient, network: Network, ctx: AppContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Calls over the quota cost the server no evaluation (the real one runs, counted)."""
    import server.oprf.evaluations as evaluations

    calls: list[int] = []
    real = evaluations.blind_evaluate

    def counted(ctx_: AppContext, blinded: Any) -> tuple[list[bytes], bytes]:
        calls.append(len(blinded))
        return real(ctx_, blinded)

    monkeypatch.setattr(evaluations, "blind_evaluate", counted)
    ctx.policy = ctx.policy.model_copy(update={"daily_evaluation_quota": QUOTA})
    assert (await _evaluate(client, network.a_focal, QUOTA)).status_code == 200
    for _ in range(3):
        assert (await _evaluate(client, network.a_focal, 1)).status_code == 429
    assert calls == [QUOTA]


async def test_each_evaluation_is_stored_as_a_count_with_its_audit_entry(
    client: AppClient, network: Network, session: Session
) -> None:
    response = await _evaluate(client, network.a_focal, 3)
    assert response.status_code == 200
    row = session.scalars(select(DailyUsage)).one()
    assert (row.org_id, row.checks, row.evaluated_elements) == (network.org_a.id, 0, 3)
    # The table has no column an element could be in: whose, which day, how many.
    assert set(DailyUsage.__table__.columns.keys()) == {
        "org_id",
        "day",
        "checks",
        "evaluated_elements",
    }
    entry = session.scalars(select(AuditEntry).where(AuditEntry.action == "oprf.evaluate")).one()
    assert entry.details == {"purpose": "register", "elements": 3}
    assert (entry.actor_org_id, entry.actor_principal_id) == (
        network.org_a.id,
        network.a_focal.id,
    )


async def test_over_quota_refusal_stores_nothing(
    client: AppClient, network: Network, session: Session, ctx: AppContext
) -> None:
    ctx.policy = ctx.policy.model_copy(update={"daily_evaluation_quota": QUOTA})
    assert (await _evaluate(client, network.a_focal, QUOTA)).status_code == 200
    assert (await _evaluate(client, network.a_focal, 1)).status_code == 429
    session.expire_all()
    assert [r.evaluated_elements for r in session.scalars(select(DailyUsage))] == [QUOTA]
    entries = session.scalars(select(AuditEntry).where(AuditEntry.action == "oprf.evaluate"))
    assert len(list(entries)) == 1


async def test_registration_through_the_quota_still_works_end_to_end(
    client: AppClient, network: Network, clock: MutableClock, ctx: AppContext
) -> None:
    from tests.blindflow import register_person
    from tests.server.blindmatch.people import REGISTERED

    case = await register_person(client, network.a_focal.headers, REGISTERED, today=clock.today())
    assert case["pseudonym_count"] > 0
    # The shipped quota leaves room for many registrations a day.
    assert ctx.policy.daily_evaluation_quota >= 10 * case["pseudonym_count"]


async def test_every_refused_evaluation_is_audited_without_its_elements(
    client: AppClient, network: Network, session: Session, ctx: AppContext
) -> None:
    ctx.policy = ctx.policy.model_copy(update={"daily_evaluation_quota": QUOTA})
    too_many = ctx.policy.max_keys_per_check + 1
    refused = [
        await _evaluate(client, network.a_focal, 2, blinded_elements=[IDENTITY.hex()] * 2),
        await _evaluate(client, network.a_focal, too_many),
    ]
    assert (await _evaluate(client, network.a_focal, QUOTA)).status_code == 200
    refused.append(await _evaluate(client, network.a_focal, 3))
    network.org_a.status = "suspended"
    session.commit()
    refused.append(await _evaluate(client, network.a_focal, 1))
    assert [_type(r) for r in refused] == [
        "invalid-element",
        "policy-violation",
        "quota-exceeded",
        "mou-inactive",
    ]
    session.expire_all()
    entries = list(
        session.scalars(
            select(AuditEntry).where(AuditEntry.action == "oprf.refused").order_by(AuditEntry.seq)
        )
    )
    assert [e.details for e in entries] == [
        {"problem": "invalid-element", "purpose": "register", "elements": 2},
        {
            "problem": "policy-violation",
            "purpose": "register",
            "elements": too_many,
            "rule": "keys_per_case",
        },
        {"problem": "quota-exceeded", "purpose": "register", "elements": 3},
        {"problem": "mou-inactive", "purpose": "register", "elements": 1},
    ]
    assert {(e.actor_org_id, e.actor_principal_id) for e in entries} == {
        (network.org_a.id, network.a_focal.id)
    }
    # Nothing of a refused request counts against the quota: only the accepted one.
    assert [u.evaluated_elements for u in session.scalars(select(DailyUsage))] == [QUOTA]
