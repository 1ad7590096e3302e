"""Paged lists: `GET /v1/cases` and `GET /v1/disclosure-requests` by limit and offset
(`next_offset`), `GET /v1/audit` by sequence number (`next_after`); the pointer is null on the
last page, also when that page is exactly full."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.audit.models import AuditEntry
from server.audit.services import record
from server.cases.models import Case
from server.context import AppContext
from server.disclosures.models import DisclosureRequest
from server.paging import MAX_LIMIT, MAX_OFFSET
from server.registry.models import Organisation
from tests.conftest import MutableClock
from tests.factories import Actor, AppClient, Network, make_case, make_consent

pytestmark = pytest.mark.anyio


def _cases(
    session: Session,
    owner: Organisation,
    registrar: Actor,
    clock: MutableClock,
    n: int,
    *,
    status: str = "active",
) -> list[str]:
    """`n` cases of `owner`, one a minute apart (oldest first); their ids, newest first."""
    ids = []
    for i in range(n):
        case = make_case(
            session,
            owner,
            registrar.id,
            status=status,
            created_at=clock() - timedelta(days=1) + timedelta(minutes=i),
        )
        ids.append(case.id)
    session.commit()
    return ids[::-1]


async def _walk(
    client: AppClient, path: str, headers: Mapping[str, str], **params: Any
) -> tuple[list[str], list[int | None]]:
    """Every id of a limit/offset list, following `next_offset`; and the pointers seen."""
    seen: list[str] = []
    pointers: list[int | None] = []
    offset = 0
    while True:
        response = await client.get(
            path, params={**params, "offset": offset}, headers=dict(headers)
        )
        assert response.status_code == 200, response.text
        page = response.json()
        seen += [item["id"] for item in page["items"]]
        pointers.append(page["next_offset"])
        if page["next_offset"] is None:
            return seen, pointers
        offset = page["next_offset"]


async def test_cases_are_paged_newest_first_until_next_offset_is_null(
    client: AppClient, network: Network, session: Session, clock: MutableClock
) -> None:
    newest_first = _cases(session, network.org_a, network.a_focal, clock, 5)
    _cases(session, network.org_b, network.b_focal, clock, 3)
    seen, pointers = await _walk(client, "/v1/cases", network.a_focal.headers, limit=2)
    assert seen == newest_first
    assert pointers == [2, 4, None]


async def test_a_full_last_page_has_no_next_page(
    client: AppClient, network: Network, session: Session, clock: MutableClock
) -> None:
    newest_first = _cases(session, network.org_a, network.a_focal, clock, 4)
    seen, pointers = await _walk(client, "/v1/cases", network.a_focal.headers, limit=2)
    assert seen == newest_first
    assert pointers == [2, None]


async def test_cases_page_by_100_unless_told(
    client: AppClient, network: Network, session: Session, clock: MutableClock
) -> None:
    newest_first = _cases(session, network.org_a, network.a_focal, clock, 101)
    first = (await client.get("/v1/cases", headers=network.a_focal.headers)).json()
    assert [c["id"] for c in first["items"]] == newest_first[:100]
    assert first["next_offset"] == 100
    rest = (
        await client.get("/v1/cases", params={"offset": 100}, headers=network.a_focal.headers)
    ).json()
    assert [c["id"] for c in rest["items"]] == newest_first[100:]
    assert rest["next_offset"] is None
    everything = (
        await client.get("/v1/cases", params={"limit": MAX_LIMIT}, headers=network.a_focal.headers)
    ).json()
    assert len(everything["items"]) == 101 and everything["next_offset"] is None


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": MAX_LIMIT + 1},
        {"offset": -1},
        {"offset": MAX_OFFSET + 1},
        {"limit": "many"},
    ],
)
@pytest.mark.parametrize("path", ["/v1/cases", "/v1/disclosure-requests"])
async def test_page_parameters_out_of_range_are_refused(
    client: AppClient, network: Network, path: str, params: dict[str, Any]
) -> None:
    response = await client.get(path, params=params, headers=network.a_focal.headers)
    assert response.status_code == 422
    assert response.json()["type"] == "urn:refcheck:problem:invalid-request"


async def test_status_filter_pages_within_the_filter(
    client: AppClient, network: Network, session: Session, clock: MutableClock
) -> None:
    _cases(session, network.org_a, network.a_focal, clock, 3)
    withdrawn = _cases(session, network.org_a, network.a_focal, clock, 3, status="withdrawn")
    seen, pointers = await _walk(
        client, "/v1/cases", network.a_focal.headers, status="withdrawn", limit=2
    )
    assert seen == withdrawn and pointers == [2, None]


async def test_an_offset_past_the_end_answers_an_empty_last_page(
    client: AppClient, network: Network, session: Session, clock: MutableClock
) -> None:
    _cases(session, network.org_a, network.a_focal, clock, 2)
    page = (
        await client.get("/v1/cases", params={"offset": 50}, headers=network.a_focal.headers)
    ).json()
    assert page == {"items": [], "next_offset": None}


async def test_disclosure_requests_page_the_same_way(
    client: AppClient, network: Network, session: Session, clock: MutableClock
) -> None:
    [case_id] = _cases(session, network.org_a, network.a_focal, clock, 1)
    ids = []
    for i in range(3):
        consent = make_consent(
            session,
            network.org_b,
            network.b_hr.id,
            applicant_ref=f"applicant-{i}",
            position_ref="position-1",
            consented_at=clock(),
            expires_on=clock.today() + timedelta(days=30),
        )
        created = clock() - timedelta(hours=3 - i)
        request = DisclosureRequest(
            requester_org_id=network.org_b.id,
            requester_principal_id=network.b_hr.id,
            holder_org_id=network.org_a.id,
            case_id=case_id,
            entry_id=str(uuid.uuid4()),
            consent_id=consent.id,
            state="requested",
            created_at=created,
            due_at=created + timedelta(days=10),
        )
        session.add(request)
        session.flush()
        ids.append(request.id)
    session.commit()
    seen, pointers = await _walk(
        client, "/v1/disclosure-requests", network.a_focal.headers, limit=2
    )
    assert seen == ids[::-1] and pointers == [2, None]
    seen, pointers = await _walk(client, "/v1/disclosure-requests", network.b_hr.headers, limit=3)
    assert seen == ids[::-1] and pointers == [None]


async def test_audit_full_last_page_has_no_next_after(
    client: AppClient, network: Network, session: Session, ctx: AppContext
) -> None:
    for _ in range(4):
        record(session, ctx, None, "test.paging")
    session.commit()
    # Sequence numbers are ascending but may have gaps (a PostgreSQL sequence does not roll
    # back with a transaction): page by the numbers the entries really have.
    seqs = [int(s) for s in session.scalars(select(AuditEntry.seq).order_by(AuditEntry.seq))]
    last_two = await client.get(
        "/v1/audit", params={"after_seq": seqs[-3], "limit": 2}, headers=network.auditor.headers
    )
    page = last_two.json()
    assert [e["seq"] for e in page["items"]] == seqs[-2:]
    assert page["next_after"] is None
    start = seqs[-5] if len(seqs) > 4 else 0
    earlier = await client.get(
        "/v1/audit", params={"after_seq": start, "limit": 2}, headers=network.auditor.headers
    )
    assert earlier.json()["next_after"] == seqs[-3]


def test_page_helper_reads_one_row_more_than_it_returns() -> None:
    from server.paging import split_page

    assert split_page([1, 2, 3], 2) == ([1, 2], True)
    assert split_page([1, 2], 2) == ([1, 2], False)
    assert split_page([], 2) == ([], False)


async def test_cases_registered_at_the_same_instant_page_in_one_stable_order(
    client: AppClient, network: Network, session: Session, clock: MutableClock
) -> None:
    ids = _cases(session, network.org_a, network.a_focal, clock, 3)
    for case_id in ids:
        case = session.get(Case, case_id)
        assert case is not None
        case.created_at = clock()
    session.commit()
    seen, pointers = await _walk(client, "/v1/cases", network.a_focal.headers, limit=1)
    assert seen == sorted(ids) and pointers == [1, 2, None]
