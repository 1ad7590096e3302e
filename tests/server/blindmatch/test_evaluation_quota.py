"""Registrations within the daily evaluation quota: each takes `keys_per_check` elements of its
organisation's UTC day, whatever the person's real number of keys (which nothing counts), is
refused with the time to the next UTC midnight when over, and refusals are never counted.

Registration is the only evaluation outside a check (`POST /v1/oprf/evaluate` is gone): every
element evaluated is a query of the network's key, which static Diffie-Hellman attacks need many
of (RFC 9497 section 7.2)."""

from __future__ import annotations

from datetime import UTC, datetime, time
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from protocol.identity import derive_keys
from server.audit.models import AuditEntry
from server.cases.models import Case
from server.context import AppContext
from server.quotas.models import DailyUsage
from tests.blindflow import case_body, fetch_key
from tests.conftest import MutableClock
from tests.factories import Actor, AppClient, Network
from tests.server.blindmatch.people import OTHER, REGISTERED, SPELLING_VARIANTS

pytestmark = pytest.mark.anyio


async def _register(
    client: AppClient, actor: Actor, clock: MutableClock, person: Any = REGISTERED, **meta: Any
) -> httpx.Response:
    server_key = await fetch_key(client, actor.headers)
    body = case_body(server_key, derive_keys(person), today=clock.today(), **meta)
    return await client.post("/v1/cases", headers=actor.headers, json=body)


async def _at_ten_pm(client: AppClient, network: Network, clock: MutableClock) -> None:
    clock.set(datetime.combine(clock.today(), time(22), UTC))
    for actor in network.actors.values():
        await actor.refresh(client)


def _type(response: httpx.Response) -> str:
    problem_type = response.json()["type"]
    assert isinstance(problem_type, str)
    return problem_type.removeprefix("urn:refcheck:problem:")


def _quota(ctx: AppContext, registrations: int, spare: int = 0) -> int:
    quota = registrations * ctx.policy.keys_per_check + spare
    ctx.policy = ctx.policy.model_copy(update={"daily_evaluation_quota": quota})
    return quota


async def test_each_registration_takes_keys_per_check_elements_whatever_the_person(
    client: AppClient, network: Network, clock: MutableClock, ctx: AppContext, session: Session
) -> None:
    await _at_ten_pm(client, network, clock)
    spare = ctx.policy.keys_per_check - 1
    _quota(ctx, 2, spare)
    # People with 28 and with 15 keys take the same share.
    assert len(derive_keys(REGISTERED)) != len(derive_keys(SPELLING_VARIANTS[3]))
    assert (await _register(client, network.a_focal, clock)).status_code == 201
    ok = await _register(client, network.a_focal, clock, SPELLING_VARIANTS[3])
    assert ok.status_code == 201
    usage = session.scalars(select(DailyUsage)).one()
    assert usage.evaluated_elements == 2 * ctx.policy.keys_per_check

    # What is left is less than one registration's worth: refused, saying when to retry.
    over = await _register(client, network.a_focal, clock, OTHER)
    assert over.status_code == 429
    assert _type(over) == "quota-exceeded"
    assert over.headers["Retry-After"] == str(2 * 3600)
    assert over.json()["retry_after_seconds"] == 2 * 3600
    assert f"({spare} left)" in over.json()["detail"]


async def test_refused_registrations_are_not_counted(
    client: AppClient, network: Network, clock: MutableClock, ctx: AppContext
) -> None:
    _quota(ctx, 2)
    policy = await _register(client, network.a_focal, clock, sanction="warning")
    assert _type(policy) == "policy-violation"
    server_key = await fetch_key(client, network.a_focal.headers)
    body = case_body(server_key, derive_keys(OTHER), today=clock.today())
    sealed = await client.post(
        "/v1/cases",
        headers=network.a_focal.headers,
        json={**body, "sanction": "contract_termination"},
    )
    assert _type(sealed) == "sealed-keys-invalid"
    assert (await _register(client, network.a_focal, clock)).status_code == 201
    assert (await _register(client, network.a_focal, clock, OTHER)).status_code == 201
    # The next one is over: the refusals above took nothing, and neither does this 429.
    assert (await _register(client, network.a_focal, clock)).status_code == 429
    assert (await _register(client, network.a_focal, clock)).status_code == 429


async def test_quota_is_per_organisation_and_per_utc_day(
    client: AppClient, network: Network, clock: MutableClock, ctx: AppContext
) -> None:
    await _at_ten_pm(client, network, clock)
    _quota(ctx, 1)
    assert (await _register(client, network.a_focal, clock)).status_code == 201
    assert (await _register(client, network.a_focal, clock, OTHER)).status_code == 429
    # Another member's focal point is not held back by org-a's use...
    assert (await _register(client, network.b_focal, clock)).status_code == 201
    # ...and org-a registers again after UTC midnight.
    clock.advance(hours=2)
    await network.a_focal.refresh(client)
    assert (await _register(client, network.a_focal, clock, OTHER)).status_code == 201


async def test_over_quota_is_refused_before_the_key_is_used(
    client: AppClient,
    network: Network,
    clock: MutableClock,
    ctx: AppContext,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Registrations over the quota cost the server no evaluation (the real one runs, counted)."""
    import server.cases.services as services

    calls: list[int] = []
    real = services.evaluate

    def counted(ctx_: AppContext, elements: Any) -> list[bytes]:
        calls.append(len(elements))
        return real(ctx_, elements)

    monkeypatch.setattr(services, "evaluate", counted)
    _quota(ctx, 1)
    assert (await _register(client, network.a_focal, clock)).status_code == 201
    for _ in range(3):
        assert (await _register(client, network.a_focal, clock, OTHER)).status_code == 429
    assert calls == [len(derive_keys(REGISTERED))]


async def test_each_registration_is_stored_as_a_count_with_its_audit_entry(
    client: AppClient, network: Network, clock: MutableClock, session: Session, ctx: AppContext
) -> None:
    response = await _register(client, network.a_focal, clock)
    assert response.status_code == 201
    row = session.scalars(select(DailyUsage)).one()
    assert (row.org_id, row.checks, row.evaluated_elements) == (
        network.org_a.id,
        0,
        ctx.policy.keys_per_check,
    )
    # The table has no column an element could be in: whose, which day, how many.
    assert set(DailyUsage.__table__.columns.keys()) == {
        "org_id",
        "day",
        "checks",
        "evaluated_elements",
    }
    entry = session.scalars(select(AuditEntry).where(AuditEntry.action == "case.register")).one()
    assert (entry.actor_org_id, entry.actor_principal_id) == (
        network.org_a.id,
        network.a_focal.id,
    )


async def test_over_quota_refusal_stores_nothing(
    client: AppClient, network: Network, clock: MutableClock, session: Session, ctx: AppContext
) -> None:
    _quota(ctx, 1)
    assert (await _register(client, network.a_focal, clock)).status_code == 201
    assert (await _register(client, network.a_focal, clock, OTHER)).status_code == 429
    session.expire_all()
    assert [r.evaluated_elements for r in session.scalars(select(DailyUsage))] == [
        ctx.policy.keys_per_check
    ]
    assert session.scalar(select(func.count()).select_from(Case)) == 1
    entries = session.scalars(select(AuditEntry).where(AuditEntry.action == "case.register"))
    assert len(list(entries)) == 1


def test_the_shipped_quota_leaves_room_for_many_registrations_a_day(ctx: AppContext) -> None:
    assert ctx.policy.daily_evaluation_quota >= 10 * ctx.policy.keys_per_check
