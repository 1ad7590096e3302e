"""The SDK across an OPRF key rotation (the server's `rotate`): a client whose pin file names the
old key is refused once (`key-mismatch`), reads the signed announcements again, and checks under
the new key; the old key's filter is not reused; the pin file keeps both announcements. A check
caught by the switch (rotated between `POST /v1/checks` and its entries call) is re-run once
under the new key naming `rerun_of`, without spending the consent again; a second rotation, or a
`key-rotated` with no newer key announced, surfaces. After a rotation, an announcement or a
filter signed by any key but the credentials' is refused.

Each test has a data directory of its own, because a rotation writes key files."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI

from client_sdk import CheckStatus, KeyRotated, SignatureInvalid
from protocol.filter import full_body, parse_full
from protocol.signed import parse, sign
from server.keys import create_keys
from server.oprf.rotation import rotate
from tests.factories import Network
from tests.sdk.conftest import Counting, Recording, SdkFactory, Tamper, TamperBody
from tests.sdk.test_client_app import case_fields, consent
from tests.server.blindmatch.people import OTHER as OTHER_PERSON
from tests.server.blindmatch.people import REGISTERED

pytestmark = pytest.mark.anyio


@pytest.fixture
def key_dir(tmp_path: Path) -> Path:
    """A data directory of this test's own (overrides the session's shared one)."""
    create_keys(tmp_path / "server")
    return tmp_path


async def test_a_warm_client_follows_a_rotation_once_and_matches_under_the_new_key(
    app: FastAPI, sdk_for: SdkFactory, network: Network, clock: Any, ctx: Any, tmp_path: Path
) -> None:
    await sdk_for(network.a_focal).register_case(REGISTERED, case_fields(clock.today()))
    pins, filter_file = tmp_path / "pins.json", tmp_path / "org-b.filter"
    before = sdk_for(network.b_hr, pin_file=pins, filter_file=filter_file)
    first = await before.check_applicant(REGISTERED, await consent(before))
    assert first.status is CheckStatus.MATCH
    old = await before.oprf_key()

    rotate(ctx)

    counting = Counting(httpx.ASGITransport(app=app))
    after = sdk_for(network.b_hr, pin_file=pins, filter_file=filter_file, transport=counting)
    result = await after.check_applicant(REGISTERED, await consent(before, applicant_ref="A2"))
    assert result.status is CheckStatus.MATCH
    assert {m.case_id for m in result.matches} == {m.case_id for m in first.matches}
    # Refused once under the old key, keys and policy read again, checked under the new one
    # (the other keys call is the session's first request: the signing key compared).
    assert counting.calls[("POST", "/v1/checks")] == 2
    assert counting.calls[("GET", "/v1/network/keys")] == 2
    assert after.network is not None
    new = after.network.current
    assert new.key_seq == old.key_seq + 1 and new.prev_key_id == old.key_id
    assert [k.key_seq for k in after.network.keys] == [old.key_seq, new.key_seq]
    # The old key's filter cannot hold the new pseudonyms: fetched whole, not as a delta.
    snapshot = after._core.filters.snapshot
    assert snapshot is not None and snapshot.key_id == new.key_id


class RotateAfterCheck(Recording):
    """The real app; right after it answers `POST /v1/checks` (the first `times` times), the
    server rotates its OPRF key: the switch falls between a check and its entries call."""

    def __init__(self, inner: httpx.AsyncBaseTransport, ctx: Any, *, times: int = 1) -> None:
        super().__init__(inner)
        self.ctx, self.times = ctx, times

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await super().handle_async_request(request)
        if (request.method, request.url.path) == ("POST", "/v1/checks") and self.times > 0:
            assert response.status_code == 200
            await response.aread()
            self.times -= 1
            rotate(self.ctx)
        return response

    def bodies(self, method: str, path: str) -> list[dict[str, Any]]:
        return [
            json.loads(r.content) for r in self.requests if (r.method, r.url.path) == (method, path)
        ]


@pytest.mark.parametrize("warm_filter", [True, False], ids=["409-at-entries", "new-key-filter"])
async def test_a_check_caught_by_a_rotation_is_rerun_once_under_the_new_key_spending_once(
    app: FastAPI, sdk_for: SdkFactory, network: Network, clock: Any, ctx: Any, warm_filter: bool
) -> None:
    """With the old key's filter held, the hit is claimed and gets 409 `key-rotated`; without
    it, the server serves only the new key's filter. Either way: one re-run, a match."""
    registered = await sdk_for(network.a_focal).register_case(
        REGISTERED, case_fields(clock.today())
    )
    hooked = RotateAfterCheck(httpx.ASGITransport(app=app), ctx)
    hr = sdk_for(network.b_hr, transport=hooked)
    old = await hr.oprf_key()
    if warm_filter:
        await hr.registry_filter()
    consent_id = await consent(hr, max_checks=1)

    result = await hr.check_applicant(REGISTERED, consent_id)

    assert result.status is CheckStatus.MATCH
    assert {m.case_id for m in result.matches} == {registered.case_id}
    first, rerun = hooked.bodies("POST", "/v1/checks")
    assert "rerun_of" not in first and first["key_id"] == old.key_id
    new = await hr.oprf_key()
    assert new.key_seq == old.key_seq + 1 and rerun["key_id"] == new.key_id
    assert rerun["consent_id"] == consent_id
    entries = [r for r in hooked.requests if r.url.path.endswith("/entries")]
    if warm_filter:
        # The original check's claim got the 409; the re-run's claim got the entries.
        assert len(entries) == 2
        assert entries[0].url.path == f"/v1/checks/{rerun['rerun_of']}/entries"
    else:
        assert len(entries) == 1
    # The result and its matches name the re-run (the check a disclosure request must name).
    assert entries[-1].url.path == f"/v1/checks/{result.check_id}/entries"
    assert result.check_id != rerun["rerun_of"]
    assert {m.check_id for m in result.matches} == {result.check_id}
    # The consent allowed one check, and one was spent.
    assert (await hr.get_consent(consent_id)).checks_used == 1


async def test_a_second_rotation_during_the_rerun_surfaces(
    app: FastAPI, sdk_for: SdkFactory, network: Network, clock: Any, ctx: Any
) -> None:
    await sdk_for(network.a_focal).register_case(REGISTERED, case_fields(clock.today()))
    hooked = RotateAfterCheck(httpx.ASGITransport(app=app), ctx, times=2)
    hr = sdk_for(network.b_hr, transport=hooked)
    await hr.registry_filter()
    consent_id = await consent(hr, max_checks=3)
    with pytest.raises(KeyRotated):
        await hr.check_applicant(REGISTERED, consent_id)
    # Once, not more: no third check, and the re-run spent nothing.
    assert len(hooked.bodies("POST", "/v1/checks")) == 2
    assert (await hr.get_consent(consent_id)).checks_used == 1


async def test_key_rotated_without_a_newer_key_announced_is_not_rerun(
    app: FastAPI, sdk_for: SdkFactory, network: Network, clock: Any
) -> None:
    """A 409 `key-rotated` while the signed announcements name no newer key: nothing to re-run
    under, so the refusal stands (a re-run under the same key would gain nothing)."""
    await sdk_for(network.a_focal).register_case(REGISTERED, case_fields(clock.today()))

    class KeyRotatedAtEntries(Counting):
        """The real app, except that every entries call is answered 409 `key-rotated`."""

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            if not request.url.path.endswith("/entries"):
                return await super().handle_async_request(request)
            self.calls[(request.method, request.url.path)] += 1
            problem = {"type": "urn:refcheck:problem:key-rotated", "title": "x", "detail": "x"}
            return httpx.Response(
                409, headers={"Content-Type": "application/problem+json"}, json=problem
            )

    counting = KeyRotatedAtEntries(httpx.ASGITransport(app=app))
    hr = sdk_for(network.b_hr, transport=counting)
    await hr.registry_filter()
    with pytest.raises(KeyRotated):
        await hr.check_applicant(REGISTERED, await consent(hr))
    assert counting.calls[("POST", "/v1/checks")] == 1


def _impostor() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(b"\x0d" * 32)


async def test_after_a_rotation_an_announcement_signed_by_another_key_is_refused(
    app: FastAPI, sdk_for: SdkFactory, network: Network, clock: Any, ctx: Any
) -> None:
    """The server (or someone in its place) announces the new key under a signature of its own:
    refused, and nothing is checked under that key."""
    hr = sdk_for(network.b_hr)
    old = await hr.oprf_key()
    rotate(ctx)

    def forge(body: dict[str, Any]) -> None:
        newest = parse(bytes.fromhex(body["oprf_keys"][-1]))
        body["oprf_keys"][-1] = sign(_impostor(), dict(newest.fields)).framed().hex()

    tamper = Tamper(httpx.ASGITransport(app=app), path="/v1/network/keys", edit=forge)
    forged = sdk_for(network.b_hr, transport=tamper, pin_file=None)
    with pytest.raises(SignatureInvalid):
        await forged.check_applicant(OTHER_PERSON, await consent(hr))
    assert tamper.calls[("POST", "/v1/checks")] == 0
    assert forged.network is None or forged.network.current == old


async def test_after_a_rotation_a_filter_signed_by_another_key_is_refused(
    app: FastAPI, sdk_for: SdkFactory, network: Network, clock: Any, ctx: Any
) -> None:
    await sdk_for(network.a_focal).register_case(REGISTERED, case_fields(clock.today()))
    rotate(ctx)

    def forge(body: bytes) -> bytes:
        header, values = parse_full(body)
        return full_body(sign(_impostor(), dict(header.fields)), values)

    tamper = TamperBody(httpx.ASGITransport(app=app), path="/v1/registry/filter", edit=forge)
    hr = sdk_for(network.b_hr, transport=tamper)
    with pytest.raises(SignatureInvalid):
        await hr.registry_filter()
    with pytest.raises(SignatureInvalid):
        await hr.check_applicant(REGISTERED, await consent(hr))


# -- verify-live after a rotation ----------------------------------------------------------------


async def test_verify_live_after_a_rotation_compares_the_reissued_values_verified(
    app: FastAPI, sdk_for: SdkFactory, network: Network, clock: Any, ctx: Any
) -> None:
    """The focal point's client still pins the old key (it registered under it): the filter
    under the new key makes it read the signed announcements again and follow them."""
    counting = Counting(httpx.ASGITransport(app=app))
    focal = sdk_for(network.a_focal, transport=counting)
    registration = await focal.register_case(REGISTERED, case_fields(clock.today()))
    rotate(ctx)

    (live,) = await focal.verify_live([registration])

    path = f"/v1/cases/{registration.case_id}/filter-values"
    assert counting.calls[("GET", path)] == 1
    new = await focal.oprf_key()
    assert live.status == "present" and live.missing == 0
    reissued = live.reissued
    assert reissued is not None and reissued.case == registration.case
    assert (reissued.key_id, reissued.key_seq) == (new.key_id, registration.key_seq + 1)
    assert len(reissued.filter_values) == len(registration.filter_values)
    assert set(reissued.filter_values).isdisjoint(registration.filter_values)
    assert live.as_dict()["reissued_key_id"] == new.key_id
    # Kept in place of the old ones, they are compared as they are: nothing fetched again.
    (again,) = await focal.verify_live([reissued])
    assert again.status == "present" and again.reissued is None
    assert counting.calls[("GET", path)] == 1


@pytest.mark.parametrize(
    ("lie", "error"),
    [
        ("pad_proof", "ProofInvalid"),
        ("pad_point", "ProofInvalid"),
        ("old_key", "InvalidResponse"),
        ("other_case", "InvalidResponse"),
        ("fewer_values", "InvalidResponse"),
        ("pads_not_last", "InvalidResponse"),
    ],
)
async def test_reissued_values_that_do_not_hold_are_refused(
    app: FastAPI,
    sdk_for: SdkFactory,
    network: Network,
    clock: Any,
    ctx: Any,
    lie: str,
    error: str,
) -> None:
    import client_sdk
    from tests.sdk.conftest import flip_bit

    focal_plain = sdk_for(network.a_focal)
    registration = await focal_plain.register_case(REGISTERED, case_fields(clock.today()))
    old = await focal_plain.oprf_key()
    rotate(ctx)

    def edit(body: dict[str, Any]) -> None:
        if lie == "pad_proof":
            body["pad_proof"] = flip_bit(body["pad_proof"], 9)
        elif lie == "pad_point":
            body["pads"][0]["point"] = body["pads"][-1]["point"]
        elif lie == "old_key":
            body["key_id"], body["key_seq"] = old.key_id, old.key_seq
        elif lie == "other_case":
            body["case_id"] = "00000000-0000-4000-8000-000000000000"
        elif lie == "fewer_values":
            body["filter_values"] = body["filter_values"][1:]
        elif lie == "pads_not_last":
            for pad in body["pads"]:
                pad["index"] -= 1

    path = f"/v1/cases/{registration.case_id}/filter-values"
    tamper = Tamper(httpx.ASGITransport(app=app), path=path, edit=edit)
    focal = sdk_for(network.a_focal, transport=tamper)
    with pytest.raises(getattr(client_sdk, error)):
        await focal.verify_live([registration])


async def test_a_withdrawn_case_is_not_reissued_after_a_rotation(
    app: FastAPI, sdk_for: SdkFactory, network: Network, clock: Any, ctx: Any
) -> None:
    focal_plain = sdk_for(network.a_focal)
    registration = await focal_plain.register_case(REGISTERED, case_fields(clock.today()))
    withdrawn = await focal_plain.withdraw_case(registration.case_id, "registered_in_error")
    rotate(ctx)
    counting = Counting(httpx.ASGITransport(app=app))
    focal = sdk_for(network.a_focal, transport=counting)
    (live,) = await focal.verify_live([dataclasses.replace(registration, case=withdrawn)])
    assert live.status == "not_live" and live.reissued is None
    assert not any(path.endswith("/filter-values") for _m, path in counting.calls)


async def test_a_filter_of_a_newer_key_nobody_announced_is_refused(
    app: FastAPI, sdk_for: SdkFactory, network: Network, ctx: Any
) -> None:
    """A filter naming a key_seq beyond every signed announcement (signed with the real key, as
    only the server could): the client reads the announcements again, finds no newer key, and
    refuses the filter rather than follow it."""
    from client_sdk import FilterWrongKey

    def newer(body: bytes) -> bytes:
        header, values = parse_full(body)
        fields = dict(header.fields)
        fields.update(key_id="ffffffffffffffff", key_seq=fields["key_seq"] + 1)
        return full_body(sign(ctx.keys.signing_key, fields), values)

    tamper = TamperBody(httpx.ASGITransport(app=app), path="/v1/registry/filter", edit=newer)
    hr = sdk_for(network.b_hr, transport=tamper)
    with pytest.raises(FilterWrongKey):
        await hr.registry_filter()
    assert tamper.calls[("GET", "/v1/network/keys")] == 2
    assert tamper.calls[("GET", "/v1/registry/filter")] == 1
