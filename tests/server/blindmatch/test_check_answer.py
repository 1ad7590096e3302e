"""The answer to `POST /v1/checks`: the server's evaluation of every element under the announced
key with one proof over all of them, and the signed header of the filter in force, in exactly
the wire model's shape (docs/protocol.md, "Check", step 3)."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol import signed
from protocol.errors import VerifyError
from protocol.hazmat.ristretto255 import scalar_mult
from protocol.identity import derive_keys
from protocol.messages import CheckResponse
from server.context import AppContext
from tests.blindflow import (
    build_check_request,
    fetch_filter,
    fetch_key,
    record_consent,
    register_person,
    unblind_verified,
)
from tests.conftest import MutableClock
from tests.factories import AppClient, Network
from tests.server.blindmatch.people import OTHER, REGISTERED

pytestmark = pytest.mark.anyio


async def _consent(client: AppClient, network: Network, clock: MutableClock) -> str:
    created = await record_consent(client, network.b_hr.headers, now=clock())
    consent_id = created["id"]
    assert isinstance(consent_id, str)
    return consent_id


async def _check_body(client: AppClient, network: Network, consent_id: str) -> dict[str, Any]:
    server_key = await fetch_key(client, network.b_hr.headers)
    _batch, body = build_check_request(server_key, consent_id, derive_keys(OTHER))
    return body


async def test_the_answer_is_exactly_the_wire_model(
    client: AppClient, network: Network, clock: MutableClock
) -> None:
    body = await _check_body(client, network, await _consent(client, network, clock))
    response = await client.post("/v1/checks", headers=network.b_hr.headers, json=body)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    parsed = CheckResponse.model_validate_json(response.content)
    assert parsed.model_dump() == response.json()


async def test_the_answer_is_the_servers_evaluation_of_every_element_under_the_announced_key(
    client: AppClient, network: Network, clock: MutableClock, ctx: AppContext
) -> None:
    consent_id = await _consent(client, network, clock)
    server_key = await fetch_key(client, network.b_hr.headers)
    batch, body = build_check_request(server_key, consent_id, derive_keys(OTHER))
    response = await client.post("/v1/checks", headers=network.b_hr.headers, json=body)
    answer = response.json()
    evaluated = [bytes.fromhex(z) for z in answer["evaluated_elements"]]
    assert evaluated == [scalar_mult(ctx.keys.oprf_secret, e) for e in batch.blinded]
    # The proof covers every slot, the applicant's and the random ones alike...
    assert unblind_verified(server_key, batch, answer)
    # ...and not another order of them.
    with pytest.raises(VerifyError):
        server_key.client.verify_proof(
            list(batch.blinded), [*evaluated[1:], evaluated[0]], bytes.fromhex(answer["proof"])
        )


async def test_the_answer_carries_the_signed_header_of_the_filter_in_force(
    client: AppClient, network: Network, clock: MutableClock, ctx: AppContext
) -> None:
    await register_person(client, network.a_focal.headers, REGISTERED, today=clock.today())
    consent_id = await _consent(client, network, clock)
    server_key = await fetch_key(client, network.b_hr.headers)
    body = await _check_body(client, network, consent_id)
    answer = (await client.post("/v1/checks", headers=network.b_hr.headers, json=body)).json()
    header = signed.parse(bytes.fromhex(answer["filter"]))
    header.verify(server_key.signing_key, network_id=server_key.network_id, type="filter")
    fields = header.fields
    assert (fields["key_id"], fields["key_seq"]) == (ctx.keys.oprf_key_id, ctx.keys.oprf_key_seq)
    assert fields["count"] == ctx.policy.keys_per_check
    # It is the header of the filter GET /v1/registry/filter serves now.
    served, _values = await fetch_filter(client, network.b_hr.headers, server_key)
    assert served.fields["sha256"] == fields["sha256"]
    assert served.fields["revision"] == fields["revision"]
    # Signed by the network key only: another key's signature is refused.
    stranger = Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    with pytest.raises(VerifyError):
        header.verify(stranger, network_id=server_key.network_id, type="filter")
