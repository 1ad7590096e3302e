"""`GET /v1/stats/answer-times`: disclosure requests counted by how early or late the holder
answered against the deadline, per month they fell due, network-wide; counts only (issue 19,
the secretariat's chart of answer times)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from server.db import transaction
from server.disclosures.deadlines import run_deadlines
from server.stats.answer_times import AnswerTime, answer_time
from tests.conftest import MutableClock
from tests.factories import AppClient, Network
from tests.server.disclosures.conftest import (
    answer_request,
    match,
    ok,
    open_request,
    request_under_new_consent,
)

pytestmark = pytest.mark.anyio

BUCKETS = [
    "early_7_plus",
    "early_3_to_6",
    "early_0_to_2",
    "late_1_to_3",
    "late_4_plus",
    "open_overdue",
    "expired",
]


@pytest.fixture
def clock() -> MutableClock:
    # Early January, so that every due date of the test falls in one year.
    return MutableClock(datetime(2026, 1, 5, 9, 0, tzinfo=UTC))


async def refresh(client: AppClient, network: Network) -> None:
    for actor in network.actors.values():
        await actor.refresh(client)


async def move(client: AppClient, network: Network, clock: MutableClock, when: datetime) -> None:
    clock.set(when)
    await refresh(client, network)


def zeroes() -> dict[str, int]:
    return dict.fromkeys(BUCKETS, 0)


async def test_answers_are_counted_by_days_before_or_after_the_deadline_per_due_month(
    client: AppClient, network: Network, clock: MutableClock, ctx
) -> None:
    days = ctx.policy.disclosure_response_deadline_days
    # January: one request left to expire, one withdrawn by the requester (never counted).
    matched = await match(client, network, clock.today())
    expiring = await open_request(client, network, matched)
    withdrawn, _ = await request_under_new_consent(client, network, matched)
    ok(
        await client.post(
            f"/v1/disclosure-requests/{withdrawn['id']}/withdraw", headers=network.b_hr.headers
        )
    )
    january_due = datetime.fromisoformat(expiring["due_at"])
    await move(
        client,
        network,
        clock,
        january_due + timedelta(days=ctx.policy.disclosure_expiry_days_after_due, hours=1),
    )
    with transaction(ctx.sessions) as session:
        assert run_deadlines(session, ctx).expired == 1

    # Six requests made together, due together, answered at different times.
    made = clock()
    requests = [(await request_under_new_consent(client, network, matched))[0] for _ in range(6)]
    early_7, early_3, early_0, late_1, late_4, left_open = requests
    due = datetime.fromisoformat(early_7["due_at"])
    assert due == made + timedelta(days=days)
    for request, when in (
        (early_7, made + timedelta(hours=1)),  # days - 1 days early and more
        (early_3, due - timedelta(days=5)),
        (early_0, due - timedelta(days=2, hours=23)),  # 2 whole days left: "0 to 2"
        (late_1, due + timedelta(hours=1)),  # a day begun after the deadline
        (late_4, due + timedelta(days=3, hours=1)),  # the fourth day late
    ):
        await move(client, network, clock, when)
        await answer_request(client, network, request)
    # Made now, due later: unanswered but not late yet, so not counted.
    not_due, _ = await request_under_new_consent(client, network, matched)
    assert left_open["state"] == "requested" and not_due["state"] == "requested"

    for actor in (network.admin, network.auditor):
        body = ok(
            await client.get("/v1/stats/answer-times", params={"year": 2026}, headers=actor.headers)
        )
        assert body["year"] == 2026
        assert body["as_of"] == clock.today().isoformat()
        assert body["buckets"] == BUCKETS
        assert body["record_retention_days"] == ctx.policy.disclosure_record_retention_days
        months = {m["month"]: m["counts"] for m in body["months"]}
        assert list(months) == [f"2026-{m:02d}" for m in range(1, 13)]
        assert months[january_due.strftime("%Y-%m")] == {**zeroes(), "expired": 1}
        assert months[due.strftime("%Y-%m")] == {
            "early_7_plus": 1,
            "early_3_to_6": 1,
            "early_0_to_2": 1,
            "late_1_to_3": 1,
            "late_4_plus": 1,
            "open_overdue": 1,
            "expired": 0,
        }
        others = set(months) - {january_due.strftime("%Y-%m"), due.strftime("%Y-%m")}
        assert all(months[m] == zeroes() for m in others)
        assert body["totals"] == {**dict.fromkeys(BUCKETS, 1), "expired": 1}
        # Counts only: no request, organisation or instant.
        for hidden in (expiring["id"], early_7["id"], network.org_a.id, network.org_b.id, "due_at"):
            assert hidden not in str(body)

    empty = ok(
        await client.get(
            "/v1/stats/answer-times", params={"year": 2025}, headers=network.admin.headers
        )
    )
    assert empty["totals"] == zeroes() and len(empty["months"]) == 12


@pytest.mark.parametrize("year", [2000, 9999])
async def test_the_first_and_last_years_the_api_accepts_are_answered(
    client: AppClient, network: Network, year: int
) -> None:
    """9999 has no following year to bound it (found by the Schemathesis run: it was a 500)."""
    response = await client.get(
        "/v1/stats/answer-times", params={"year": year}, headers=network.admin.headers
    )
    assert response.status_code == 200, response.text
    assert len(response.json()["months"]) == 12


async def test_members_may_not_read_answer_times(client: AppClient, network: Network) -> None:
    for actor in (network.b_hr, network.a_hr, network.a_focal):
        response = await client.get("/v1/stats/answer-times", headers=actor.headers)
        assert response.status_code == 403, actor.principal.name
        assert response.json()["type"].endswith("permission-denied")


DUE = datetime(2026, 5, 20, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("answered", "expected"),
    [
        (DUE - timedelta(days=7), AnswerTime.EARLY_7_PLUS),
        (DUE - timedelta(days=6, hours=23), AnswerTime.EARLY_3_TO_6),
        (DUE - timedelta(days=3), AnswerTime.EARLY_3_TO_6),
        (DUE - timedelta(days=2, hours=23), AnswerTime.EARLY_0_TO_2),
        (DUE, AnswerTime.EARLY_0_TO_2),
        (DUE + timedelta(seconds=1), AnswerTime.LATE_1_TO_3),
        (DUE + timedelta(days=3), AnswerTime.LATE_1_TO_3),
        (DUE + timedelta(days=3, seconds=1), AnswerTime.LATE_4_PLUS),
    ],
)
def test_bucket_boundaries_count_whole_days_early_and_begun_days_late(answered, expected):
    assert answer_time(DUE, answered, "answered", DUE + timedelta(days=40)) == expected
    # The state does not matter once answered (a closed request was answered too).
    assert answer_time(DUE, answered, "closed", DUE + timedelta(days=40)) == expected


@pytest.mark.parametrize(
    ("state", "now", "expected"),
    [
        ("requested", DUE + timedelta(seconds=1), AnswerTime.OPEN_OVERDUE),
        ("acknowledged", DUE + timedelta(days=9), AnswerTime.OPEN_OVERDUE),
        ("requested", DUE, None),  # due, not past due
        ("expired", DUE + timedelta(days=31), AnswerTime.EXPIRED),
        ("withdrawn", DUE + timedelta(days=1), None),
        ("closed", DUE + timedelta(days=1), None),  # closed with its record, never answered
    ],
)
def test_unanswered_requests_count_only_once_late(state, now, expected):
    assert answer_time(DUE, None, state, now) == expected
