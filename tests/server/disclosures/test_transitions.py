"""The request's life: acknowledge, answer, close, withdraw, outcome, and the refusals of every
move the current state does not allow (409 `invalid-transition` naming the state)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from server.audit.models import AuditEntry
from server.disclosures.models import DisclosureRequest
from tests.factories import AppClient, Network
from tests.server.disclosures.conftest import (
    Matched,
    answer_request,
    ok,
    open_request,
    sealed_answer_hex,
    sealed_details_hex,
)

pytestmark = pytest.mark.anyio

INVALID = "urn:refcheck:problem:invalid-transition"


def url(request: dict[str, Any], action: str = "") -> str:
    base = f"/v1/disclosure-requests/{request['id']}"
    return f"{base}/{action}" if action else base


def assert_invalid(response: Any, state: str) -> None:
    assert response.status_code == 409, response.text
    body = response.json()
    assert body["type"] == INVALID
    assert body["state"] == state
    assert state in body["detail"]


async def test_acknowledge_answer_and_close_move_the_request_and_drop_the_ciphertext(
    client: AppClient, network: Network, matched: Matched, session
) -> None:
    details = sealed_details_hex(matched, network, {"full_name": "Siti Rahmawati"})
    request = await open_request(client, network, matched, sealed_applicant_details=details)
    acked = ok(await client.post(url(request, "acknowledge"), headers=network.a_focal.headers))
    assert acked["state"] == "acknowledged" and acked["acknowledged_at"]
    # Acknowledging again is a harmless retry.
    again = ok(await client.post(url(request, "acknowledge"), headers=network.a_focal.headers))
    assert again["acknowledged_at"] == acked["acknowledged_at"]

    answered = await answer_request(client, network, request)
    assert answered["state"] == "answered" and answered["answered_at"]
    requester_view = ok(await client.get(url(request), headers=network.b_hr.headers))
    assert requester_view["sealed_answer"]
    row = session.get(DisclosureRequest, request["id"])
    session.refresh(row)
    # The details were for the holder's comparison; once it answered they are gone.
    assert row.sealed_applicant_details is None and row.sealed_answer is not None

    closed = ok(await client.post(url(request, "close"), headers=network.b_hr.headers))
    assert closed["state"] == "closed" and closed["close_reason"] == "read"
    assert closed["sealed_answer"] is None
    session.refresh(row)
    assert row.sealed_answer is None
    ok(await client.post(url(request, "close"), headers=network.b_hr.headers))

    actions = list(
        session.scalars(
            select(AuditEntry.action)
            .where(AuditEntry.object_id == request["id"])
            .order_by(AuditEntry.seq)
        )
    )
    assert actions == [
        "disclosure.request",
        "disclosure.acknowledge",
        "disclosure.answer",
        "disclosure.close",
    ]


async def test_answer_without_acknowledging_first_is_accepted(
    client: AppClient, network: Network, matched: Matched
) -> None:
    request = await open_request(client, network, matched)
    answered = await answer_request(
        client, network, request, same_person="declined", decline_reason="under appeal"
    )
    assert answered["state"] == "answered"
    assert answered["acknowledged_at"] == answered["answered_at"]


async def test_moves_the_state_does_not_allow_are_refused_naming_it(
    client: AppClient, network: Network, matched: Matched
) -> None:
    request = await open_request(client, network, matched)
    assert_invalid(
        await client.post(url(request, "close"), headers=network.b_hr.headers), "requested"
    )
    await answer_request(client, network, request)
    sealed = sealed_answer_hex(request, network.org_a_keys, network.org_b_keys)
    # An answer is final: a second one would be a second disclosure.
    assert_invalid(
        await client.post(
            url(request, "answer"), headers=network.a_focal.headers, json={"sealed_answer": sealed}
        ),
        "answered",
    )
    assert_invalid(
        await client.post(url(request, "acknowledge"), headers=network.a_focal.headers),
        "answered",
    )
    assert_invalid(
        await client.post(url(request, "withdraw"), headers=network.b_hr.headers), "answered"
    )


async def test_withdrawn_request_cannot_be_answered(
    client: AppClient, network: Network, matched: Matched, session
) -> None:
    details = sealed_details_hex(matched, network, {"full_name": "Siti Rahmawati"})
    request = await open_request(client, network, matched, sealed_applicant_details=details)
    withdrawn = ok(await client.post(url(request, "withdraw"), headers=network.b_hr.headers))
    assert withdrawn["state"] == "withdrawn"
    assert withdrawn["close_reason"] == "requester_withdrew"
    ok(await client.post(url(request, "withdraw"), headers=network.b_hr.headers))
    sealed = sealed_answer_hex(request, network.org_a_keys, network.org_b_keys)
    assert_invalid(
        await client.post(
            url(request, "answer"), headers=network.a_focal.headers, json={"sealed_answer": sealed}
        ),
        "withdrawn",
    )
    row = session.get(DisclosureRequest, request["id"])
    session.refresh(row)
    assert row.sealed_applicant_details is None


async def test_only_the_requester_withdraws_closes_and_reports_and_only_the_holder_answers(
    client: AppClient, network: Network, matched: Matched
) -> None:
    request = await open_request(client, network, matched)
    sealed = sealed_answer_hex(request, network.org_a_keys, network.org_b_keys)
    # The requester's HR cannot answer its own request (no permission), nor see it as holder.
    response = await client.post(
        url(request, "answer"), headers=network.b_hr.headers, json={"sealed_answer": sealed}
    )
    assert response.status_code == 403
    response = await client.post(url(request, "withdraw"), headers=network.a_focal.headers)
    assert response.status_code == 403


async def test_answer_of_the_wrong_size_is_refused(
    client: AppClient, network: Network, matched: Matched
) -> None:
    request = await open_request(client, network, matched)
    response = await client.post(
        url(request, "answer"), headers=network.a_focal.headers, json={"sealed_answer": "ab" * 100}
    )
    assert response.status_code == 422


async def test_a_holder_whose_mou_lapsed_may_not_disclose(
    client: AppClient, network: Network, matched: Matched, session
) -> None:
    request = await open_request(client, network, matched)
    network.org_a.data_sharing_agreement = False
    session.commit()
    sealed = sealed_answer_hex(request, network.org_a_keys, network.org_b_keys)
    response = await client.post(
        url(request, "answer"), headers=network.a_focal.headers, json={"sealed_answer": sealed}
    )
    assert response.status_code == 403
    assert response.json()["type"] == "urn:refcheck:problem:mou-inactive"


async def test_rejection_because_of_a_disclosure_needs_an_answer(
    client: AppClient, network: Network, matched: Matched
) -> None:
    request = await open_request(client, network, matched)
    response = await client.post(
        url(request, "outcome"),
        headers=network.b_hr.headers,
        json={"outcome": "not_hired_disclosure"},
    )
    assert_invalid(response, "requested")
    await answer_request(client, network, request)
    reported = ok(
        await client.post(
            url(request, "outcome"),
            headers=network.b_hr.headers,
            json={"outcome": "not_hired_disclosure"},
        )
    )
    assert reported["outcome"] == "not_hired_disclosure" and reported["outcome_at"]
    # The same outcome again is a retry; another one contradicts it.
    ok(
        await client.post(
            url(request, "outcome"),
            headers=network.b_hr.headers,
            json={"outcome": "not_hired_disclosure"},
        )
    )
    response = await client.post(
        url(request, "outcome"), headers=network.b_hr.headers, json={"outcome": "hired"}
    )
    assert_invalid(response, "answered")
    # The holder never sees the requester's hiring decision.
    holder_view = ok(await client.get(url(request), headers=network.a_focal.headers))
    assert holder_view["outcome"] is None


async def test_unknown_outcome_is_refused(
    client: AppClient, network: Network, matched: Matched
) -> None:
    request = await open_request(client, network, matched)
    response = await client.post(
        url(request, "outcome"), headers=network.b_hr.headers, json={"outcome": "maybe"}
    )
    assert response.status_code == 422
