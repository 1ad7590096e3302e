"""One commit rule (issue 21): a request's session is its one transaction, committed when the
route returns and before the response is sent, rolled back when anything raises. Services only
flush, so a domain error raised half-way, after a flush, leaves the database as it was."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from server.audit.models import AuditEntry
from server.auth.deps import Db
from server.consents import services as consent_services
from server.consents.models import Consent
from server.errors import PolicyViolation
from server.stats.models import StatCounter
from tests.blindflow import consent_body
from tests.conftest import MutableClock
from tests.factories import AppClient, Network

pytestmark = pytest.mark.anyio

MONTH = "2099-01"


def _counts(session: Session) -> tuple[int, int, int]:
    return (
        session.scalar(select(func.count()).select_from(Consent)) or 0,
        session.scalar(select(func.count()).select_from(AuditEntry)) or 0,
        session.scalar(select(func.coalesce(func.sum(StatCounter.value), 0))) or 0,
    )


async def test_a_domain_error_after_a_flush_leaves_the_database_as_it_was(
    client: AppClient,
    network: Network,
    clock: MutableClock,
    session: Session,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Recording a consent writes the consent, its audit entry and two counters; a refusal
    raised after all of them are flushed leaves none of them."""
    before = _counts(session)
    real_increment = consent_services.increment
    flushed: list[bool] = []

    def increment_then_refuse(s: Session, *args: Any, **kwargs: Any) -> None:
        real_increment(s, *args, **kwargs)
        s.flush()
        flushed.append(s.scalar(select(func.count()).select_from(Consent)) == before[0] + 1)
        raise PolicyViolation("refused half-way", rule="half_way")

    monkeypatch.setattr(consent_services, "increment", increment_then_refuse)
    response = await client.post(
        "/v1/consents", headers=network.b_hr.headers, json=consent_body(now=clock())
    )
    assert response.status_code == 422 and response.json()["rule"] == "half_way"
    assert flushed == [True]  # the consent was in the database when the error was raised
    assert _counts(session) == before


def _counter_route(app: FastAPI, org_id: str, *, fail_commit: bool) -> None:
    def add_counter(session: Db) -> dict[str, str]:
        # No commit here: the request's session commits when the route returns.
        session.add(StatCounter(org_id=org_id, month=MONTH, name="request_rule", value=1))
        if fail_commit:

            def refuse(_session: Session) -> None:
                raise RuntimeError("the commit fails")

            event.listen(session, "before_commit", refuse)
        return {"status": "added"}

    app.add_api_route("/test/counter", add_counter, methods=["POST"])


def _counter(session: Session, org_id: str) -> int | None:
    return session.scalar(
        select(StatCounter.value).where(StatCounter.org_id == org_id, StatCounter.month == MONTH)
    )


async def test_the_request_commits_what_its_route_wrote(
    app: FastAPI, client: AppClient, network: Network, session: Session
) -> None:
    _counter_route(app, network.org_a.id, fail_commit=False)
    response = await client.post("/test/counter")
    assert response.status_code == 200
    assert _counter(session, network.org_a.id) == 1


async def test_a_failed_commit_is_answered_as_an_error_not_a_success(
    app: FastAPI, client: AppClient, network: Network, session: Session
) -> None:
    """The commit happens before the response is sent: a client never reads an answer whose
    writes were then lost."""
    _counter_route(app, network.org_a.id, fail_commit=True)
    response = await client.post("/test/counter")
    assert response.status_code == 500
    assert response.json()["type"].endswith("internal-error")
    assert _counter(session, network.org_a.id) is None
