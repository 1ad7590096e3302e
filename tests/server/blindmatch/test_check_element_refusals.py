"""`POST /v1/checks` refuses every kind of bad blinded element, naming its position, and any
other count than exactly `keys_per_check`.

The check path counts and decodes every element before it spends or records anything
(`server.checks.services`), so these pin that nothing bad reaches the key unrefused, that the
refusal is the same `invalid-element` problem with the right index whatever is wrong with the
element (a repeat included), that a count other than `keys_per_check` is `wrong-element-count`
(a count that varied with the applicant would tell the server about them), and that such a
refusal spends no budget and records no check.
"""

from __future__ import annotations

import pytest
import rbcl
from sqlalchemy import select
from sqlalchemy.orm import Session

from protocol.hazmat.ristretto255 import IDENTITY
from protocol.identity import derive_keys
from server.checks.models import Check
from server.consents.models import Consent
from tests.blindflow import build_check_request, fetch_key, random_element, record_consent
from tests.conftest import MutableClock
from tests.factories import AppClient, Network
from tests.server.blindmatch.people import OTHER

pytestmark = pytest.mark.anyio


def _with_high_bit(element: bytes) -> bytes:
    """A valid element's second encoding (bit 255 set), which RFC 9496 says to refuse."""
    return element[:31] + bytes([element[31] | 0x80])


BAD_ELEMENTS = {
    "identity": IDENTITY.hex(),
    "negative field element": (b"\x01" + bytes(31)).hex(),
    "field element not below p": (b"\xff" * 31 + b"\x7f").hex(),
    "non-canonical encoding": _with_high_bit(rbcl.crypto_core_ristretto255_random()).hex(),
    "upper-case hex": rbcl.crypto_core_ristretto255_random().hex().upper(),
    "too short": rbcl.crypto_core_ristretto255_random()[:31].hex(),
    "too long": rbcl.crypto_core_ristretto255_random().hex() + "00",
    "not hex": "zz" * 32,
    "not a point": "ff" * 32,
}


@pytest.mark.parametrize("what", sorted(BAD_ELEMENTS))
async def test_a_bad_element_is_refused_with_its_index_and_spends_nothing(
    what: str, client: AppClient, network: Network, clock: MutableClock, session: Session
) -> None:
    consent = await record_consent(client, network.b_hr.headers, now=clock())
    server_key = await fetch_key(client, network.b_hr.headers)
    _batch, body = build_check_request(server_key, consent["id"], derive_keys(OTHER))
    assert len(body["blinded_elements"]) > 3
    body["blinded_elements"][3] = BAD_ELEMENTS[what]
    response = await client.post("/v1/checks", headers=network.b_hr.headers, json=body)
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["type"] == "urn:refcheck:problem:invalid-element"
    assert problem["index"] == 3
    assert BAD_ELEMENTS[what] not in response.text
    _spent_nothing(session, consent["id"])


def _spent_nothing(session: Session, consent_id: str) -> None:
    session.expire_all()
    stored = session.get(Consent, consent_id)
    assert stored is not None and stored.checks_used == 0
    assert session.scalars(select(Check)).all() == []


@pytest.mark.parametrize("repeat_of", [0, 5])
async def test_a_repeated_element_is_refused_with_its_index_and_spends_nothing(
    repeat_of: int, client: AppClient, network: Network, clock: MutableClock, session: Session
) -> None:
    consent = await record_consent(client, network.b_hr.headers, now=clock())
    server_key = await fetch_key(client, network.b_hr.headers)
    _batch, body = build_check_request(server_key, consent["id"], derive_keys(OTHER))
    elements = body["blinded_elements"]
    elements[7] = elements[repeat_of]
    response = await client.post("/v1/checks", headers=network.b_hr.headers, json=body)
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["type"] == "urn:refcheck:problem:invalid-element"
    # The later of the two is the one named: the earlier was fine when it was read.
    assert problem["index"] == 7
    _spent_nothing(session, consent["id"])


@pytest.mark.parametrize("delta", [-31, -1, 1])
async def test_any_other_count_than_keys_per_check_is_refused_and_spends_nothing(
    delta: int, client: AppClient, network: Network, clock: MutableClock, session: Session
) -> None:
    consent = await record_consent(client, network.b_hr.headers, now=clock())
    server_key = await fetch_key(client, network.b_hr.headers)
    _batch, body = build_check_request(server_key, consent["id"], derive_keys(OTHER))
    keys_per_check = client.ctx.policy.keys_per_check
    assert len(body["blinded_elements"]) == keys_per_check
    count = keys_per_check + delta
    elements = body["blinded_elements"][:count]
    elements += [random_element().hex() for _ in range(count - len(elements))]
    response = await client.post(
        "/v1/checks", headers=network.b_hr.headers, json={**body, "blinded_elements": elements}
    )
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["type"] == "urn:refcheck:problem:wrong-element-count"
    assert problem["keys_per_check"] == keys_per_check
    assert "index" not in problem
    _spent_nothing(session, consent["id"])


async def test_the_count_is_refused_before_a_bad_element_is_looked_at(
    client: AppClient, network: Network, clock: MutableClock, session: Session
) -> None:
    """One answer for a request that is wrong twice: the count, which needs no decoding."""
    consent = await record_consent(client, network.b_hr.headers, now=clock())
    server_key = await fetch_key(client, network.b_hr.headers)
    _batch, body = build_check_request(server_key, consent["id"], derive_keys(OTHER))
    elements = [IDENTITY.hex(), *body["blinded_elements"][1:-1]]
    response = await client.post(
        "/v1/checks", headers=network.b_hr.headers, json={**body, "blinded_elements": elements}
    )
    assert response.json()["type"] == "urn:refcheck:problem:wrong-element-count"
    _spent_nothing(session, consent["id"])


async def test_the_same_elements_pass_when_valid(
    client: AppClient, network: Network, clock: MutableClock
) -> None:
    """The control: the request the refusals above were made from is answered."""
    consent = await record_consent(client, network.b_hr.headers, now=clock())
    server_key = await fetch_key(client, network.b_hr.headers)
    _batch, body = build_check_request(server_key, consent["id"], derive_keys(OTHER))
    response = await client.post("/v1/checks", headers=network.b_hr.headers, json=body)
    assert response.status_code == 200, response.text
