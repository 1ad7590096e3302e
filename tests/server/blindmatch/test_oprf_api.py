"""`GET /v1/oprf/key` and `POST /v1/oprf/evaluate`: RFC 9497 VOPRF over HTTP."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from protocol.hazmat.ristretto255 import GENERATOR, IDENTITY, scalar_mult
from protocol.identity import derive_keys
from protocol.oprf import VOPRFClient
from server.audit.models import AuditEntry
from server.context import AppContext
from tests.blindflow import blind_keys, fetch_key
from tests.factories import AppClient, Network
from tests.server.blindmatch.people import REGISTERED

pytestmark = pytest.mark.anyio

# 2^255 - 18 (little-endian): a field element that is not reduced, hence non-canonical.
NON_CANONICAL = (2**255 - 18).to_bytes(32, "little")


async def test_key_is_published_with_suite_mode_and_id(
    client: AppClient, network: Network, ctx: AppContext
) -> None:
    response = await client.get("/v1/oprf/key", headers=network.b_hr.headers)
    assert response.status_code == 200
    assert response.json() == {
        "suite": "ristretto255-SHA512",
        "mode": "voprf",
        "key_id": ctx.keys.oprf_key_id,
        "public_key": ctx.keys.oprf_public.hex(),
    }


async def test_evaluation_verifies_with_an_rfc9497_client_and_uses_the_published_key(
    client: AppClient, network: Network, ctx: AppContext
) -> None:
    server_key = await fetch_key(client, network.a_focal.headers)
    keys = derive_keys(REGISTERED)
    batch = blind_keys(server_key, keys)
    response = await client.post(
        "/v1/oprf/evaluate",
        headers=network.a_focal.headers,
        json={"purpose": "register", "blinded_elements": [e.hex() for e in batch.blinded]},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["key_id"] == ctx.keys.oprf_key_id
    assert len(bytes.fromhex(body["proof"])) == 64
    evaluated = [bytes.fromhex(e) for e in body["evaluated_elements"]]
    assert evaluated == [scalar_mult(ctx.keys.oprf_secret, b) for b in batch.blinded]
    # The RFC's Finalize (proof verification included) accepts the answer.
    client_v = VOPRFClient(server_key.public_key)
    outputs = client_v.finalize_batch(
        [k.value for k in keys],
        list(batch.blinds),
        evaluated,
        list(batch.blinded),
        bytes.fromhex(body["proof"]),
    )
    assert len(outputs) == len(keys) and all(len(o) == 64 for o in outputs)


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        (IDENTITY.hex(), "identity"),
        (NON_CANONICAL.hex(), "non-canonical"),
        (GENERATOR.hex()[:-2], "too short"),
        (GENERATOR.hex() + "00", "too long"),
        (GENERATOR.hex().upper(), "upper-case hex"),
        ("zz" * 32, "not hex"),
        ("ff" * 32, "not a point"),
    ],
)
async def test_invalid_element_is_refused_with_its_index(
    client: AppClient, network: Network, bad: str, why: str
) -> None:
    response = await client.post(
        "/v1/oprf/evaluate",
        headers=network.a_focal.headers,
        json={"purpose": "register", "blinded_elements": [GENERATOR.hex(), bad]},
    )
    assert response.status_code == 422, why
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"] == "urn:refcheck:problem:invalid-element"
    assert problem["index"] == 1
    assert bad not in response.text


async def test_evaluation_is_for_focal_points_only(client: AppClient, network: Network) -> None:
    for actor in (network.b_hr, network.admin, network.auditor):
        response = await client.post(
            "/v1/oprf/evaluate",
            headers=actor.headers,
            json={"purpose": "register", "blinded_elements": [GENERATOR.hex()]},
        )
        assert response.status_code == 403
        assert response.json()["type"] == "urn:refcheck:problem:permission-denied"


async def test_evaluation_needs_an_mou_that_permits_registering(
    client: AppClient, network: Network, session: Session
) -> None:
    network.org_a.may_register = False
    session.commit()
    response = await client.post(
        "/v1/oprf/evaluate",
        headers=network.a_focal.headers,
        json={"purpose": "register", "blinded_elements": [GENERATOR.hex()]},
    )
    assert response.status_code == 403
    assert response.json()["type"] == "urn:refcheck:problem:mou-inactive"


async def test_evaluation_batch_is_capped_by_policy(
    client: AppClient, network: Network, ctx: AppContext
) -> None:
    too_many = ctx.policy.max_keys_per_check + 1
    response = await client.post(
        "/v1/oprf/evaluate",
        headers=network.a_focal.headers,
        json={"purpose": "register", "blinded_elements": [GENERATOR.hex()] * too_many},
    )
    assert response.status_code == 422
    assert response.json()["rule"] == "keys_per_case"


async def test_unknown_purpose_is_refused(client: AppClient, network: Network) -> None:
    response = await client.post(
        "/v1/oprf/evaluate",
        headers=network.a_focal.headers,
        json={"purpose": "check", "blinded_elements": [GENERATOR.hex()]},
    )
    assert response.status_code == 422
    assert response.json()["type"] == "urn:refcheck:problem:invalid-request"


async def test_evaluation_is_audited_with_its_count_only(
    client: AppClient, network: Network, session: Session
) -> None:
    response = await client.post(
        "/v1/oprf/evaluate",
        headers=network.a_focal.headers,
        json={"purpose": "register", "blinded_elements": [GENERATOR.hex()] * 3},
    )
    assert response.status_code == 200
    entry = session.scalars(select(AuditEntry).where(AuditEntry.action == "oprf.evaluate")).one()
    assert entry.actor_principal_id == network.a_focal.id
    assert entry.details == {"purpose": "register", "elements": 3}
