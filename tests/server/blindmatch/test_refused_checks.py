"""Refused checks are audited (`check.refused`) and counted (`checks_refused`), without changing
the refusal, spending budget or quota, or recording anything about the applicant; and the daily
check quota counts only checks that ran."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, time
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from protocol.hazmat.ristretto255 import IDENTITY
from protocol.identity import derive_keys
from server.audit.models import AuditEntry
from server.checks.models import Check
from server.consents.models import Consent
from server.context import AppContext
from server.registry.models import OrgStatus
from server.stats.services import Counter, figures
from tests.blindflow import build_check_request, check_person, fetch_key, record_consent
from tests.conftest import MutableClock
from tests.factories import AppClient, Network
from tests.server.blindmatch.people import OTHER

pytestmark = pytest.mark.anyio

APPLICANT_REF = "HR-APPLICANT-7731"


@dataclass
class Attempt:
    """A check request made to be refused, and what the refusal should look like."""

    consent_id: str
    body: dict[str, Any]
    own_consent: bool = True


async def _consent(client: AppClient, network: Network, clock: MutableClock, **kw: Any) -> str:
    created = await record_consent(
        client, network.b_hr.headers, now=clock(), applicant_ref=APPLICANT_REF, **kw
    )
    consent_id = created["id"]
    assert isinstance(consent_id, str)
    return consent_id


async def _body(client: AppClient, network: Network, consent_id: str) -> dict[str, Any]:
    server_key = await fetch_key(client, network.b_hr.headers)
    _batch, body = build_check_request(server_key, consent_id, derive_keys(OTHER))
    return body


def _type(response: httpx.Response) -> str:
    problem_type = response.json()["type"]
    assert isinstance(problem_type, str)
    return problem_type.removeprefix("urn:refcheck:problem:")


def _refused_entries(session: Session) -> list[AuditEntry]:
    session.expire_all()
    return list(
        session.scalars(
            select(AuditEntry).where(AuditEntry.action == "check.refused").order_by(AuditEntry.seq)
        )
    )


def _count(session: Session, ctx: AppContext, org_id: str, counter: Counter) -> int:
    session.expire_all()
    year = ctx.now().year
    return figures(session, year, org_id=org_id)[org_id].totals[counter.value]


# --- one setup per kind of refusal ------------------------------------------------------------

Setup = Callable[[AppClient, Network, MutableClock, AppContext, Session], Awaitable[Attempt]]


async def _expired(
    client: AppClient, network: Network, clock: MutableClock, ctx: AppContext, session: Session
) -> Attempt:
    consent_id = await _consent(client, network, clock, expires_on=clock.today().isoformat())
    body = await _body(client, network, consent_id)
    clock.advance(days=1)
    await network.b_hr.refresh(client)
    return Attempt(consent_id, body)


async def _withdrawn(
    client: AppClient, network: Network, clock: MutableClock, ctx: AppContext, session: Session
) -> Attempt:
    consent_id = await _consent(client, network, clock)
    await client.post(f"/v1/consents/{consent_id}/withdraw", headers=network.b_hr.headers)
    return Attempt(consent_id, await _body(client, network, consent_id))


async def _exhausted(
    client: AppClient, network: Network, clock: MutableClock, ctx: AppContext, session: Session
) -> Attempt:
    consent_id = await _consent(client, network, clock, max_checks=1)
    ok = await check_person(client, network.b_hr.headers, consent_id, OTHER)
    assert ok.response.status_code == 200
    return Attempt(consent_id, await _body(client, network, consent_id))


async def _foreign(
    client: AppClient, network: Network, clock: MutableClock, ctx: AppContext, session: Session
) -> Attempt:
    created = await record_consent(client, network.a_hr.headers, now=clock())
    body = await _body(client, network, created["id"])
    return Attempt(created["id"], body, own_consent=False)


async def _over_quota(
    client: AppClient, network: Network, clock: MutableClock, ctx: AppContext, session: Session
) -> Attempt:
    ctx.policy = ctx.policy.model_copy(update={"daily_check_quota": 1})
    first = await _consent(client, network, clock)
    ok = await check_person(client, network.b_hr.headers, first, OTHER)
    assert ok.response.status_code == 200
    consent_id = await _consent(client, network, clock)
    return Attempt(consent_id, await _body(client, network, consent_id))


async def _wrong_count(
    client: AppClient, network: Network, clock: MutableClock, ctx: AppContext, session: Session
) -> Attempt:
    consent_id = await _consent(client, network, clock)
    body = await _body(client, network, consent_id)
    return Attempt(consent_id, {**body, "blinded_elements": body["blinded_elements"][:-1]})


async def _repeated_element(
    client: AppClient, network: Network, clock: MutableClock, ctx: AppContext, session: Session
) -> Attempt:
    consent_id = await _consent(client, network, clock)
    body = await _body(client, network, consent_id)
    elements = [*body["blinded_elements"][:-1], body["blinded_elements"][0]]
    return Attempt(consent_id, {**body, "blinded_elements": elements})


async def _mou_inactive(
    client: AppClient, network: Network, clock: MutableClock, ctx: AppContext, session: Session
) -> Attempt:
    consent_id = await _consent(client, network, clock)
    body = await _body(client, network, consent_id)
    network.org_b.status = OrgStatus.SUSPENDED
    session.commit()
    return Attempt(consent_id, body)


async def _invalid_element(
    client: AppClient, network: Network, clock: MutableClock, ctx: AppContext, session: Session
) -> Attempt:
    consent_id = await _consent(client, network, clock)
    body = await _body(client, network, consent_id)
    elements = [IDENTITY.hex(), *body["blinded_elements"][1:]]
    return Attempt(consent_id, {**body, "blinded_elements": elements})


async def _key_mismatch(
    client: AppClient, network: Network, clock: MutableClock, ctx: AppContext, session: Session
) -> Attempt:
    consent_id = await _consent(client, network, clock)
    body = await _body(client, network, consent_id)
    return Attempt(consent_id, {**body, "key_id": "f" * 16})


REFUSALS: list[tuple[str, Setup, int, str, str | None]] = [
    ("expired", _expired, 409, "consent-expired", None),
    ("withdrawn", _withdrawn, 409, "consent-withdrawn", None),
    ("exhausted", _exhausted, 409, "consent-exhausted", None),
    ("foreign", _foreign, 404, "not-found", None),
    ("over-quota", _over_quota, 429, "quota-exceeded", None),
    ("wrong-count", _wrong_count, 422, "wrong-element-count", None),
    ("repeat", _repeated_element, 422, "invalid-element", None),
    ("mou", _mou_inactive, 403, "mou-inactive", None),
    ("element", _invalid_element, 422, "invalid-element", None),
    ("key", _key_mismatch, 409, "key-mismatch", None),
]


@pytest.mark.parametrize(
    ("setup", "status", "slug", "rule"),
    [pytest.param(s, st, sl, r, id=name) for name, s, st, sl, r in REFUSALS],
)
async def test_refused_check_is_audited_with_its_reason_and_counts_only(
    client: AppClient,
    network: Network,
    clock: MutableClock,
    ctx: AppContext,
    session: Session,
    setup: Setup,
    status: int,
    slug: str,
    rule: str | None,
) -> None:
    attempt = await setup(client, network, clock, ctx, session)
    checks_before = len(session.scalars(select(Check)).all())
    session.expire_all()
    consent = session.get(Consent, attempt.consent_id)
    assert consent is not None
    used_before = consent.checks_used

    response = await client.post("/v1/checks", headers=network.b_hr.headers, json=attempt.body)
    assert response.status_code == status, response.text
    assert _type(response) == slug

    [entry] = _refused_entries(session)
    assert (entry.actor_principal_id, entry.actor_org_id) == (network.b_hr.id, network.org_b.id)
    # The problem (and its rule): no count of what was sent, which could vary with the
    # applicant's keys.
    expected: dict[str, Any] = {"problem": slug}
    if rule is not None:
        expected["rule"] = rule
    assert entry.details == expected
    if attempt.own_consent:
        assert (entry.object_type, entry.object_id) == ("consent", attempt.consent_id)
    else:
        # Another organisation's consent is not named in the caller's refusal.
        assert (entry.object_type, entry.object_id) == (None, None)
    # Nothing of what was sent, nor what the consent says about the applicant.
    recorded = json.dumps(
        {c: getattr(entry, c) for c in AuditEntry.__table__.columns.keys()}, default=str
    )
    assert APPLICANT_REF not in recorded
    for element in attempt.body["blinded_elements"]:
        assert element not in recorded

    # The refusal itself spent nothing and ran no check.
    session.expire_all()
    consent = session.get(Consent, attempt.consent_id)
    assert consent is not None and consent.checks_used == used_before
    assert len(session.scalars(select(Check)).all()) == checks_before
    assert _count(session, ctx, network.org_b.id, Counter.CHECKS_REFUSED) == 1


async def test_refusals_are_counted_per_organisation_in_the_statistics(
    client: AppClient, network: Network, clock: MutableClock, ctx: AppContext, session: Session
) -> None:
    attempt = await _withdrawn(client, network, clock, ctx, session)
    for _ in range(3):
        response = await client.post("/v1/checks", headers=network.b_hr.headers, json=attempt.body)
        assert response.status_code == 409
    own = (await client.get("/v1/stats", headers=network.b_hr.headers)).json()
    assert own["totals"]["checks_refused"] == 3
    assert own["totals"]["checks_run"] == 0
    month = ctx.now().strftime("%Y-%m")
    assert next(m for m in own["months"] if m["month"] == month)["counters"]["checks_refused"] == 3
    network_wide = (await client.get("/v1/stats", headers=network.admin.headers)).json()
    per_org = {o["short_name"]: o["totals"] for o in network_wide["organisations"]}
    assert per_org["org-b"]["checks_refused"] == 3
    assert per_org.get("org-a", {}).get("checks_refused", 0) == 0
    # The secretariat reads who was refused, and why, in the audit trail.
    audit = (
        await client.get("/v1/audit", params={"limit": 1000}, headers=network.admin.headers)
    ).json()
    refused = [e for e in audit["items"] if e["action"] == "check.refused"]
    assert len(refused) == 3 and {e["actor_org_id"] for e in refused} == {network.org_b.id}


async def test_a_failure_to_record_the_refusal_does_not_change_it(
    client: AppClient,
    network: Network,
    clock: MutableClock,
    ctx: AppContext,
    session: Session,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    attempt = await _withdrawn(client, network, clock, ctx, session)
    recorded = await client.post("/v1/checks", headers=network.b_hr.headers, json=attempt.body)

    import server.checks.services as checks

    def broken_record(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("audit store unavailable: " + APPLICANT_REF)

    monkeypatch.setattr(checks, "record", broken_record)
    with caplog.at_level(logging.ERROR, logger="refcheck.server.checks"):
        unrecorded = await client.post(
            "/v1/checks", headers=network.b_hr.headers, json=attempt.body
        )
    assert unrecorded.status_code == recorded.status_code == 409
    assert unrecorded.json() == recorded.json()
    assert unrecorded.headers.get("content-type") == recorded.headers.get("content-type")
    # Logged by class name only; the failed record left nothing half-written.
    assert [r.getMessage() for r in caplog.records] == [
        "could not record a refused check: RuntimeError"
    ]
    assert len(_refused_entries(session)) == 1
    assert _count(session, ctx, network.org_b.id, Counter.CHECKS_REFUSED) == 1


async def test_refused_checks_do_not_count_towards_the_daily_quota(
    client: AppClient, network: Network, clock: MutableClock, ctx: AppContext, session: Session
) -> None:
    clock.set(datetime.combine(clock.today(), time(22), UTC))
    for actor in network.actors.values():
        await actor.refresh(client)
    ctx.policy = ctx.policy.model_copy(update={"daily_check_quota": 2})
    refused = await _withdrawn(client, network, clock, ctx, session)
    for _ in range(3):
        response = await client.post("/v1/checks", headers=network.b_hr.headers, json=refused.body)
        assert response.status_code == 409
    for _ in range(2):
        consent_id = await _consent(client, network, clock)
        ok = await check_person(client, network.b_hr.headers, consent_id, OTHER)
        assert ok.response.status_code == 200
    consent_id = await _consent(client, network, clock)
    over = await check_person(client, network.b_hr.headers, consent_id, OTHER)
    assert over.response.status_code == 429
    assert over.response.headers["Retry-After"] == str(2 * 3600)
    # The 429 did not count either: after midnight the full quota is there again.
    clock.advance(hours=2)
    await network.b_hr.refresh(client)
    for _ in range(2):
        consent_id = await _consent(client, network, clock)
        ok = await check_person(client, network.b_hr.headers, consent_id, OTHER)
        assert ok.response.status_code == 200


async def test_refused_checks_cost_the_server_no_evaluation(
    client: AppClient,
    network: Network,
    clock: MutableClock,
    ctx: AppContext,
    session: Session,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every control (elements, consent, quota) is decided before the key does any work, so a
    refused call, however often it is repeated, costs the server no multiplication."""
    from server.checks import services as checks

    calls: list[int] = []
    real = checks.blind_evaluate

    def counted(ctx_: AppContext, blinded: Any, **kwargs: Any) -> tuple[list[bytes], bytes]:
        calls.append(len(blinded))
        return real(ctx_, blinded, **kwargs)

    monkeypatch.setattr(checks, "blind_evaluate", counted)
    ctx.policy = ctx.policy.model_copy(update={"daily_check_quota": 1})
    attempt = await _invalid_element(client, network, clock, ctx, session)
    bad = await client.post("/v1/checks", headers=network.b_hr.headers, json=attempt.body)
    assert _type(bad) == "invalid-element"
    assert calls == []
    consent_id = await _consent(client, network, clock)
    assert (await check_person(client, network.b_hr.headers, consent_id, OTHER)).matches == []
    assert len(calls) == 1
    consent_id = await _consent(client, network, clock)
    for _ in range(3):
        over = await check_person(client, network.b_hr.headers, consent_id, OTHER)
        assert over.response.status_code == 429
        assert _type(over.response) == "quota-exceeded"
    assert len(calls) == 1
