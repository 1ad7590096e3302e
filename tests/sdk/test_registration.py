"""Registration through the SDK (protocol v2): keys sealed to the registration key, the answer's
filter values kept (pads verified), `verify_live` comparing them with the published filter, a
retry that lands once, and a duplicate registration that looks like any other."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from client_sdk import LiveCheck, Registration
from protocol.filter import full_body, parse_full, rice_parameter, set_sha256
from protocol.identity import derive_keys
from protocol.signed import sign
from tests.factories import Network
from tests.sdk.conftest import Counting, FailFirst, SdkFactory, TamperBody
from tests.sdk.test_client_app import case_fields
from tests.server.blindmatch.people import OTHER, REGISTERED

pytestmark = pytest.mark.anyio


async def test_a_registration_keeps_exactly_keys_per_check_values_which_are_published(
    sdk_for: SdkFactory, network: Network, clock: Any, ctx: Any
) -> None:
    focal = sdk_for(network.a_focal)
    registration = await focal.register_case(REGISTERED, case_fields(clock.today()))
    assert isinstance(registration, Registration)
    kpc = ctx.policy.keys_per_check
    assert len(registration.filter_values) == kpc > len(derive_keys(REGISTERED))
    assert registration.key_id == (await focal.oprf_key()).key_id
    assert json.loads(json.dumps(registration.as_dict()))["case_id"] == registration.case_id

    (live,) = await focal.verify_live([registration])
    assert live == LiveCheck(registration.case_id, "present", 0, kpc, live.filter_revision)


async def test_registering_someone_already_registered_adds_keys_per_check_values_like_any(
    sdk_for: SdkFactory, network: Network, clock: Any, ctx: Any
) -> None:
    kpc = ctx.policy.keys_per_check
    focal_a, focal_b = sdk_for(network.a_focal), sdk_for(network.b_focal)
    before = len(await focal_a.registry_filter())
    first = await focal_a.register_case(REGISTERED, case_fields(clock.today()))
    after_first = len(await focal_a.registry_filter())
    # Another member registers the same person: no error, and the filter grows by the same.
    second = await focal_b.register_case(REGISTERED, case_fields(clock.today()))
    after_second = len(await focal_a.registry_filter())
    assert after_first - before == kpc and after_second - after_first == kpc
    # Both cases' own values are published (the shared ones once, with fillers beside them).
    assert {c.status for c in await focal_a.verify_live([first])} == {"present"}
    assert {c.status for c in await focal_b.verify_live([second])} == {"present"}
    # The values of the person's real keys coincide; nothing else tells the focal point more.
    assert len(set(first.filter_values) & set(second.filter_values)) == len(derive_keys(REGISTERED))


async def test_a_registration_retried_after_a_lost_answer_lands_once(
    app: FastAPI, sdk_for: SdkFactory, network: Network, clock: Any
) -> None:
    # The first attempt reaches the server, then the connection drops on the way back.
    class LoseFirstAnswer(Counting):
        lost = 0
        bodies: list[bytes] = []

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            response = await super().handle_async_request(request)
            if request.url.path == "/v1/cases" and request.method == "POST":
                self.bodies.append(request.content)
                if not self.lost:
                    self.lost += 1
                    raise httpx.ReadError("connection reset", request=request)
            return response

    transport = LoseFirstAnswer(httpx.ASGITransport(app=app))
    focal = sdk_for(network.a_focal, transport=transport)
    registration = await focal.register_case(REGISTERED, case_fields(clock.today()))
    assert [c.id for c in await focal.list_cases()] == [registration.case_id]
    # The retry sent the very same bytes (the seal is randomised: a new one would conflict).
    assert len(transport.bodies) == 2 and transport.bodies[0] == transport.bodies[1]


async def test_a_key_mismatch_at_registration_rereads_the_keys_and_surfaces_if_unchanged(
    app: FastAPI, sdk_for: SdkFactory, network: Network, clock: Any
) -> None:
    stale = FailFirst(
        httpx.ASGITransport(app=app), path="/v1/cases", status=409, times=1, slug="key-mismatch"
    )
    focal = sdk_for(network.a_focal, transport=stale)
    await focal.oprf_key()
    # The key did not change: the mismatch is the server's to explain, not retried blindly.
    from client_sdk import KeyMismatch

    with pytest.raises(KeyMismatch):
        await focal.register_case(REGISTERED, case_fields(clock.today()))
    assert stale.calls[("GET", "/v1/network/keys")] == 2


async def test_verify_live_reports_a_value_the_server_left_out(
    app: FastAPI, sdk_for: SdkFactory, network: Network, clock: Any, ctx: Any
) -> None:
    focal = sdk_for(network.a_focal)
    registration = await focal.register_case(REGISTERED, case_fields(clock.today()))
    other = await focal.register_case(OTHER, case_fields(clock.today()))
    await focal.withdraw_case(other.case_id, "registered_in_error")
    dropped = registration.filter_values[3]

    def drop(body: bytes) -> bytes:
        # A well-signed filter without one of the case's values: dropped, or displaced.
        header, values = parse_full(body)
        kept = [v for v in values if v != dropped]
        fields = dict(header.fields)
        fields.update(count=len(kept), p=rice_parameter(len(kept)), sha256=set_sha256(kept).hex())
        return full_body(sign(ctx.keys.signing_key, fields), kept)

    lied_to = sdk_for(
        network.a_focal,
        transport=TamperBody(httpx.ASGITransport(app=app), path="/v1/registry/filter", edit=drop),
    )
    withdrawn = await focal.get_case(other.case_id)
    checks = await lied_to.verify_live(
        [registration, Registration(withdrawn, other.key_id, other.key_seq, other.filter_values)]
    )
    assert [(c.status, c.missing) for c in checks] == [
        ("missing", 1),
        ("not_live", checks[1].missing),
    ]
