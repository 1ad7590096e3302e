"""`GET /v1/network/keys`: the network signing key and every OPRF key announcement, signed by it,
with the registration key inside the signed header (docs/protocol.md, "Codes and identifiers")."""

from __future__ import annotations

import hashlib

import pytest

from protocol import signed
from protocol.errors import VerifyError
from server.context import AppContext
from tests.factories import AppClient, Network

pytestmark = pytest.mark.anyio


async def test_keys_name_the_network_and_its_signing_key_by_its_pinned_fingerprint(
    client: AppClient, network: Network, ctx: AppContext
) -> None:
    response = await client.get("/v1/network/keys", headers=network.b_hr.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"network_id", "signing_key", "oprf_keys", "signing_key_history"}
    assert body["signing_key_history"] == []  # no rotation of the signing key yet
    assert body["network_id"] == ctx.keys.network_id
    assert body["signing_key"] == {
        "key_id": ctx.keys.audit_key_id,
        "public_key": ctx.keys.audit_public.hex(),
    }
    # What credentials files carry, and the SDK compares before trusting the key.
    signing = bytes.fromhex(body["signing_key"]["public_key"])
    assert hashlib.sha256(signing).hexdigest() == ctx.keys.signing_key_sha256


async def test_the_current_key_is_announced_signed_with_the_registration_key_inside(
    client: AppClient, network: Network, ctx: AppContext
) -> None:
    body = (await client.get("/v1/network/keys", headers=network.a_focal.headers)).json()
    [framed] = body["oprf_keys"]
    announcement = signed.parse(bytes.fromhex(framed))
    announcement.verify(ctx.keys.audit_public, network_id=ctx.keys.network_id, type="oprf-key")
    fields = dict(announcement.fields)
    assert signed.parse_time(fields.pop("issued_at")) <= ctx.now()
    assert fields == {
        "type": "oprf-key",
        "network_id": ctx.keys.network_id,
        "key_id": ctx.keys.oprf_key_id,
        "key_seq": 1,
        "public_key": ctx.keys.oprf_public.hex(),
        "prev_key_id": None,
        "registration_key": ctx.keys.registration_public.hex(),
    }


async def test_the_announcement_is_served_as_signed_once(
    client: AppClient, network: Network, clock
) -> None:
    """Every client verifies the same bytes: a later call does not sign a new announcement."""
    first = (await client.get("/v1/network/keys", headers=network.a_focal.headers)).json()
    clock.advance(hours=5)
    await network.b_hr.refresh(client)
    second = (await client.get("/v1/network/keys", headers=network.b_hr.headers)).json()
    assert second["oprf_keys"] == first["oprf_keys"]


async def test_a_changed_announcement_does_not_verify(
    client: AppClient, network: Network, ctx: AppContext
) -> None:
    """The control of the verification above: a registration key swapped in the header (to
    have registrations sealed to someone else) breaks the signature."""
    body = (await client.get("/v1/network/keys", headers=network.a_focal.headers)).json()
    framed = bytes.fromhex(body["oprf_keys"][0])
    planted = bytes(32 * [0x42]).hex().encode()
    genuine = ctx.keys.registration_public.hex().encode()
    assert framed.count(genuine) == 1
    tampered = signed.parse(framed.replace(genuine, planted))
    with pytest.raises(VerifyError):
        tampered.verify(ctx.keys.audit_public, network_id=ctx.keys.network_id, type="oprf-key")
