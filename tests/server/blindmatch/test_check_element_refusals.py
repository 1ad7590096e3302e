"""`POST /v1/checks` refuses every kind of bad blinded element, naming its position.

The check path decodes every element before it spends or records anything (the evaluation runs
after the commit, `server.checks.services`), so these pin that nothing bad reaches the key
unrefused, that the refusal is the same `invalid-element` problem with the right index whatever is
wrong with the element, and that such a refusal spends no budget and records no check.
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
from tests.blindflow import build_check_request, fetch_key, record_consent
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
    session.expire_all()
    stored = session.get(Consent, consent["id"])
    assert stored is not None and stored.checks_used == 0
    assert session.scalars(select(Check)).all() == []


async def test_the_same_elements_pass_when_valid(
    client: AppClient, network: Network, clock: MutableClock
) -> None:
    """The control: the request the refusals above were made from is answered."""
    consent = await record_consent(client, network.b_hr.headers, now=clock())
    server_key = await fetch_key(client, network.b_hr.headers)
    _batch, body = build_check_request(server_key, consent["id"], derive_keys(OTHER))
    response = await client.post("/v1/checks", headers=network.b_hr.headers, json=body)
    assert response.status_code == 200, response.text
