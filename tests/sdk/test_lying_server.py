"""A server that lies, served through a transport that tampers with the real app's answers: the
SDK refuses a filter header that is expired, goes backwards, carries a bad signature or is for
another key; a filter whose values differ from the header the check named; a registration whose
pad proof does not verify or whose pads are not the case's unused slots; an entry with the
applicant's tag that does not open, or opens as padding. Re-signed headers are signed with the
server's real signing key (as a compromised server could), so only the SDK's own checks stop
them."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from client_sdk import (
    FilterExpired,
    FilterRejected,
    FilterRollback,
    FilterWrongKey,
    InvalidResponse,
    ProofInvalid,
    SignatureInvalid,
)
from protocol.entry import Handle, hash_to_group, seal_handle, tag
from protocol.filter import full_body, parse_full, rice_parameter, set_sha256
from protocol.identity import derive_keys
from protocol.signed import format_time, parse, sign
from tests.factories import Network
from tests.sdk.conftest import SdkFactory, Tamper, TamperBody, flip_bit
from tests.sdk.test_client_app import case_fields, consent
from tests.server.blindmatch.people import OTHER, REGISTERED

pytestmark = pytest.mark.anyio


def resigned(ctx: Any, framed_hex: str, **changes: Any) -> str:
    """The header with `changes`, signed again with the server's real signing key."""
    fields = dict(parse(bytes.fromhex(framed_hex)).fields)
    fields.update(changes)
    return str(sign(ctx.keys.signing_key, fields).framed().hex())


def lying_checks(app: FastAPI, edit: Any) -> Tamper:
    def change(body: dict[str, Any]) -> None:
        body["filter"] = edit(body["filter"])

    return Tamper(httpx.ASGITransport(app=app), path="/v1/checks", edit=change)


async def test_an_expired_filter_header_is_refused(
    app: FastAPI, sdk_for: SdkFactory, network: Network, ctx: Any, clock: Any
) -> None:
    past = clock() - dt.timedelta(minutes=10)

    def expire(framed: str) -> str:
        return resigned(
            ctx,
            framed,
            issued_at=format_time(past),
            expires_at=format_time(past + dt.timedelta(minutes=2)),
        )

    hr = sdk_for(network.b_hr, transport=lying_checks(app, expire))
    with pytest.raises(FilterExpired, match="expired"):
        await hr.check_applicant(OTHER, await consent(hr))


async def test_a_filter_header_going_backwards_is_refused(
    app: FastAPI, sdk_for: SdkFactory, network: Network, ctx: Any
) -> None:
    lie = {"on": False}

    def older(framed: str) -> str:
        if not lie["on"]:
            return framed
        revision = parse(bytes.fromhex(framed)).fields["revision"]
        return resigned(ctx, framed, revision=revision - 1)

    hr = sdk_for(network.b_hr, transport=lying_checks(app, older))
    await hr.check_applicant(OTHER, await consent(hr))  # the client has seen the current one
    lie["on"] = True
    with pytest.raises(FilterRollback, match="never go backwards"):
        await hr.check_applicant(OTHER, await consent(hr, applicant_ref="APP-2"))


async def test_a_filter_header_with_a_bad_signature_is_refused(
    app: FastAPI, sdk_for: SdkFactory, network: Network
) -> None:
    def forge(framed: str) -> str:
        header_size = int(framed[:4], 16)
        return flip_bit(framed, bit=8 * (2 + header_size) + 3)  # inside the signature

    hr = sdk_for(network.b_hr, transport=lying_checks(app, forge))
    with pytest.raises(SignatureInvalid):
        await hr.check_applicant(OTHER, await consent(hr))


async def test_a_filter_header_for_another_key_is_refused(
    app: FastAPI, sdk_for: SdkFactory, network: Network, ctx: Any
) -> None:
    def other_key(framed: str) -> str:
        return resigned(ctx, framed, key_id="ffffffffffffffff", key_seq=2)

    hr = sdk_for(network.b_hr, transport=lying_checks(app, other_key))
    with pytest.raises(FilterWrongKey):
        await hr.check_applicant(OTHER, await consent(hr))


async def test_a_filter_that_is_not_the_one_the_check_named_is_refused(
    app: FastAPI, sdk_for: SdkFactory, network: Network, ctx: Any, clock: Any
) -> None:
    await sdk_for(network.a_focal).register_case(REGISTERED, case_fields(clock.today()))

    def drop_a_value(body: bytes) -> bytes:
        # The same revision, re-signed, without one value: as if an entry were left out.
        header, values = parse_full(body)
        kept = values[1:]
        fields = dict(header.fields)
        fields.update(count=len(kept), p=rice_parameter(len(kept)), sha256=set_sha256(kept).hex())
        return full_body(sign(ctx.keys.signing_key, fields), kept)

    hr = sdk_for(
        network.b_hr,
        transport=TamperBody(
            httpx.ASGITransport(app=app), path="/v1/registry/filter", edit=drop_a_value
        ),
    )
    with pytest.raises(FilterRejected, match="differ under one revision"):
        await hr.check_applicant(REGISTERED, await consent(hr))


async def test_filter_values_that_do_not_hash_to_their_header_are_refused(
    app: FastAPI, sdk_for: SdkFactory, network: Network, clock: Any
) -> None:
    await sdk_for(network.a_focal).register_case(REGISTERED, case_fields(clock.today()))

    def swap_values(body: bytes) -> bytes:
        header, values = parse_full(body)
        changed = sorted({*values[1:], values[0] + 1})
        from protocol.filter import encode_set

        return b"RCF2" + header.framed() + encode_set(changed, int(header.fields["p"]))

    hr = sdk_for(
        network.b_hr,
        transport=TamperBody(
            httpx.ASGITransport(app=app), path="/v1/registry/filter", edit=swap_values
        ),
    )
    with pytest.raises(FilterRejected, match="sha256"):
        await hr.check_applicant(OTHER, await consent(hr))


# -- registration: the pads ----------------------------------------------------------------


def lying_registrations(app: FastAPI, edit: Any) -> Tamper:
    def change(body: dict[str, Any]) -> None:
        edit(body["filter_values"])

    return Tamper(httpx.ASGITransport(app=app), path="/v1/cases", edit=change)


async def test_a_pad_proof_that_does_not_verify_is_refused(
    app: FastAPI, sdk_for: SdkFactory, network: Network, clock: Any
) -> None:
    def corrupt(values: dict[str, Any]) -> None:
        values["pad_proof"] = flip_bit(values["pad_proof"], bit=9)

    focal = sdk_for(network.a_focal, transport=lying_registrations(app, corrupt))
    with pytest.raises(ProofInvalid, match="pad proof"):
        await focal.register_case(REGISTERED, case_fields(clock.today()))


async def test_a_planted_pad_is_refused(
    app: FastAPI, sdk_for: SdkFactory, network: Network, clock: Any
) -> None:
    def plant(values: dict[str, Any]) -> None:
        # A point of the server's choosing in a pad's slot (here: another pad's).
        values["pads"][0]["point"] = values["pads"][1]["point"]

    focal = sdk_for(network.a_focal, transport=lying_registrations(app, plant))
    with pytest.raises(ProofInvalid):
        await focal.register_case(REGISTERED, case_fields(clock.today()))


async def test_pads_that_are_not_the_unused_slots_are_refused(
    app: FastAPI, sdk_for: SdkFactory, network: Network, clock: Any
) -> None:
    def drop(values: dict[str, Any]) -> None:
        values["pads"] = values["pads"][1:]

    focal = sdk_for(network.a_focal, transport=lying_registrations(app, drop))
    with pytest.raises(InvalidResponse, match="unused slots"):
        await focal.register_case(REGISTERED, case_fields(clock.today()))


# -- entries -------------------------------------------------------------------------------


def lying_entries(app: FastAPI, edit: Any) -> Tamper:
    class Entries(Tamper):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            self.path = request.url.path if request.url.path.endswith("/entries") else ""
            return await super().handle_async_request(request)

    return Entries(httpx.ASGITransport(app=app), path="", edit=edit)


async def test_an_entry_with_our_tag_that_does_not_open_is_refused(
    app: FastAPI, sdk_for: SdkFactory, network: Network, clock: Any
) -> None:
    await sdk_for(network.a_focal).register_case(REGISTERED, case_fields(clock.today()))

    def corrupt(body: dict[str, Any]) -> None:
        entry = body["entries"][0]
        entry["sealed_handle"] = flip_bit(entry["sealed_handle"], bit=400)

    hr = sdk_for(network.b_hr, transport=lying_entries(app, corrupt))
    with pytest.raises(InvalidResponse, match="does not open"):
        await hr.check_applicant(REGISTERED, await consent(hr))


async def test_a_padding_entry_under_our_tag_is_refused(
    app: FastAPI, sdk_for: SdkFactory, network: Network, clock: Any, ctx: Any
) -> None:
    await sdk_for(network.a_focal).register_case(REGISTERED, case_fields(clock.today()))
    from protocol.hazmat.ristretto255 import scalar_mult

    # The server knows skS: it can seal a handle under any registered person's P.
    points = {}
    for key in derive_keys(REGISTERED):
        p = scalar_mult(ctx.keys.oprf_secret, hash_to_group(key.value))
        points[tag(p).hex()] = p

    def plant(body: dict[str, Any]) -> None:
        entry = body["entries"][0]
        handle = Handle(
            entry_id="00000000-0000-4000-8000-000000000001",
            case_id="00000000-0000-4000-8000-000000000002",
            holder_org_id="00000000-0000-4000-8000-000000000003",
            holder_org_name="org-a",
            kind="padding",
            strength="variant",
        )
        entry["sealed_handle"] = seal_handle(points[entry["tag"]], handle).hex()

    hr = sdk_for(network.b_hr, transport=lying_entries(app, plant))
    with pytest.raises(InvalidResponse, match="padding"):
        await hr.check_applicant(REGISTERED, await consent(hr))


async def test_an_entry_for_a_tag_that_was_not_claimed_is_refused(
    app: FastAPI, sdk_for: SdkFactory, network: Network, clock: Any
) -> None:
    await sdk_for(network.a_focal).register_case(REGISTERED, case_fields(clock.today()))

    def other_tag(body: dict[str, Any]) -> None:
        body["entries"][0]["tag"] = "00" * 16

    hr = sdk_for(network.b_hr, transport=lying_entries(app, other_tag))
    with pytest.raises(InvalidResponse, match="not claimed"):
        await hr.check_applicant(REGISTERED, await consent(hr))
