"""Duplicates (issue 12): registering someone who is already registered adds exactly
`keys_per_check` values to the registry filter, as any registration does, and raises no error.

Without the fillers (docs/protocol.md, "The registry filter"), a second registration of one
person would add only its pads' values (its real keys' values are in the set already), and every
checker watching the filter would see that someone was registered twice.
"""

from __future__ import annotations

from typing import Any

import pytest

from protocol.entry import prefix
from protocol.identity import derive_keys
from server.context import AppContext
from tests.blindflow import fetch_filter, fetch_key, register_person
from tests.conftest import MutableClock
from tests.factories import Actor, AppClient, Network
from tests.server.blindmatch.people import OTHER, REGISTERED
from tests.server.blindmatch.stored import pseudonym

pytestmark = pytest.mark.anyio


async def _filter(client: AppClient, network: Network) -> tuple[int, set[int]]:
    server_key = await fetch_key(client, network.b_hr.headers)
    header, values = await fetch_filter(client, network.b_hr.headers, server_key)
    assert header.fields["count"] == len(values)
    return int(header.fields["revision"]), values


async def _register(
    client: AppClient, actor: Actor, clock: MutableClock, person: Any
) -> dict[str, Any]:
    return await register_person(client, actor.headers, person, today=clock.today())


@pytest.mark.parametrize("second_holder", ["another member", "the same member"])
async def test_registering_someone_already_registered_adds_keys_per_check_values(
    client: AppClient,
    network: Network,
    clock: MutableClock,
    ctx: AppContext,
    second_holder: str,
) -> None:
    kpc = ctx.policy.keys_per_check
    await _register(client, network.a_focal, clock, REGISTERED)
    revision, before = await _filter(client, network)
    assert len(before) == kpc

    focal = network.b_focal if second_holder == "another member" else network.a_focal
    again = await _register(client, focal, clock, REGISTERED)  # no error: 201
    later, after = await _filter(client, network)
    assert later > revision
    assert before <= after
    assert len(after) == 2 * kpc
    # The person's real values were in the set already: what was added is this case's pads
    # and as many fillers as its real keys, none of which is a value of the person.
    real = {prefix(pseudonym(ctx.keys, k)) for k in derive_keys(REGISTERED)}
    assert real <= before
    assert not (after - before) & real
    # The focal point's own answer lists its case's values, the shared ones included: what
    # lets a focal point notice a duplicate (docs/protocol.md, "Threats").
    assert real <= set(again["filter_values"]["filter_values"])


async def test_control_a_new_person_adds_keys_per_check_values_too(
    client: AppClient, network: Network, clock: MutableClock, ctx: AppContext
) -> None:
    kpc = ctx.policy.keys_per_check
    await _register(client, network.a_focal, clock, REGISTERED)
    _revision, before = await _filter(client, network)
    await _register(client, network.b_focal, clock, OTHER)
    _later, after = await _filter(client, network)
    assert before <= after and len(after - before) == kpc
    assert {prefix(pseudonym(ctx.keys, k)) for k in derive_keys(OTHER)} <= after - before


async def test_withdrawing_the_duplicate_takes_its_share_back_out(
    client: AppClient, network: Network, clock: MutableClock, ctx: AppContext
) -> None:
    """And the person is still in the filter, through the first case."""
    await _register(client, network.a_focal, clock, REGISTERED)
    _revision, first = await _filter(client, network)
    again = await _register(client, network.b_focal, clock, REGISTERED)
    response = await client.post(
        f"/v1/cases/{again['id']}/withdraw",
        headers=network.b_focal.headers,
        json={"reason": "registered_in_error"},
    )
    assert response.status_code == 200
    _later, after = await _filter(client, network)
    assert after == first
    assert {prefix(pseudonym(ctx.keys, k)) for k in derive_keys(REGISTERED)} <= after
