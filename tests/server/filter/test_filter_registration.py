"""The filter as registrations, withdrawals and checks change and read it, through the real API
(sealed registrations by focal points; the suite publishes inside every change, as the demo
network does)."""

from __future__ import annotations

from typing import Any

import pytest

from protocol.filter import DELTA_MAGIC, apply_delta, parse_delta, set_sha256
from protocol.signed import parse
from tests.blindflow import build_check_request, fetch_key, record_consent, register_person
from tests.factories import AppClient, Network
from tests.server.blindmatch.people import OTHER, REGISTERED
from tests.server.filter.helpers import verified_full

pytestmark = pytest.mark.anyio

FILTER = "/v1/registry/filter"


def values_of_case(case: dict[str, object]) -> list[int]:
    """The filter values a registration answered (`FilterValues.filter_values`)."""
    answered = case["filter_values"]
    assert isinstance(answered, dict)
    return list(answered["filter_values"])


async def full(client: AppClient, network: Network) -> tuple[dict[str, Any], list[int]]:
    response = await client.get(FILTER, headers=network.a_hr.headers)
    assert response.status_code == 200, response.text
    header, values = verified_full(response.content, client.ctx)
    return dict(header.fields), values


async def test_a_registration_is_in_the_next_filter_with_the_values_it_answered(
    client, network, clock, kpc
):
    case = await register_person(client, network.a_focal.headers, REGISTERED, today=clock.today())
    _fields, values = await full(client, network)
    assert len(values_of_case(case)) == kpc
    assert set(values_of_case(case)) == set(values)


async def test_registering_someone_already_registered_adds_keys_per_check_values(
    client, network, clock, kpc
):
    first = await register_person(client, network.a_focal.headers, REGISTERED, today=clock.today())
    before, before_values = await full(client, network)
    second = await register_person(client, network.b_focal.headers, REGISTERED, today=clock.today())
    # The same person: the same real values (the pads differ per case).
    assert set(values_of_case(first)) & set(values_of_case(second))
    after, after_values = await full(client, network)
    assert after["count"] == before["count"] + kpc == 2 * kpc
    response = await client.get(
        FILTER, headers=network.a_hr.headers, params={"since_sha256": before["sha256"]}
    )
    assert response.content.startswith(DELTA_MAGIC)
    _header, added, removed = parse_delta(response.content)
    assert len(added) == kpc and removed == []
    assert not set(added) & set(before_values)
    assert apply_delta(before_values, added, removed) == after_values


async def test_a_withdrawn_case_leaves_the_filter_at_once(client, network, clock, kpc):
    kept = await register_person(client, network.a_focal.headers, OTHER, today=clock.today())
    gone = await register_person(client, network.a_focal.headers, REGISTERED, today=clock.today())
    before, _values = await full(client, network)
    response = await client.post(
        f"/v1/cases/{gone['id']}/withdraw",
        headers=network.a_focal.headers,
        json={"reason": "other"},
    )
    assert response.status_code == 200, response.text
    after, values = await full(client, network)
    assert after["revision"] > before["revision"]
    assert set(values) == set(values_of_case(kept))
    assert after["sha256"] == set_sha256(values_of_case(kept)).hex()


async def test_a_check_is_answered_with_the_header_of_the_served_filter(
    client, network, clock, kpc
):
    await register_person(client, network.a_focal.headers, REGISTERED, today=clock.today())
    consent = await record_consent(client, network.a_hr.headers, now=clock())
    server_key = await fetch_key(client, network.a_hr.headers)
    _batch, body = build_check_request(server_key, consent["id"], [], kpc)
    response = await client.post("/v1/checks", headers=network.a_hr.headers, json=body)
    assert response.status_code == 200, response.text
    header = parse(bytes.fromhex(response.json()["filter"]))
    fields, _values = await full(client, network)
    assert dict(header.fields) == fields
