"""End to end over HTTP: match → request (with sealed applicant details) → the holder opens the
details and answers → the requester opens the answer and verifies the holder's signature. The
database holds no plaintext of the answer or the details, and nothing says what the verdict was.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from protocol.disclosure import open_answer, open_applicant_details
from protocol.errors import VerifyError
from server.db import Base
from tests.factories import AppClient, Network
from tests.server.disclosures.conftest import (
    Matched,
    ok,
    open_request,
    sealed_answer_hex,
    sealed_details_hex,
)

pytestmark = pytest.mark.anyio

APPLICANT = {
    "full_name": "Siti Nurhaliza Rahmawati",
    "date_of_birth": "1988-04-12",
    "national_id": "3201234567890001",
    "other_names": "Siti Rahma Wati",
}
TEXT = "Dismissed in 2025 after investigation ref INV-QX-77341; do not re-engage."
CONTACT = "pseah.focal.qx77341@org-a.example"


def dump(session: Session) -> str:
    """Every row of every table as text; bytes both as hex and as Latin-1 text, so a plaintext
    stored in a binary column would show up as well."""
    session.expire_all()
    out: list[str] = []
    for table in Base.metadata.sorted_tables:
        for row in session.execute(select(table)):
            for value in row:
                if isinstance(value, bytes | bytearray | memoryview):
                    raw = bytes(value)
                    out += [raw.hex(), raw.decode("latin-1")]
                else:
                    out.append(str(value))
    return "\n".join(out)


def directory_keys(directory: dict[str, Any], org_id: str) -> dict[str, bytes]:
    entry = next(e for e in directory["items"] if e["id"] == org_id)
    return {
        "ed25519": bytes.fromhex(entry["ed25519_public_key"]),
        "x25519": bytes.fromhex(entry["x25519_public_key"]),
    }


async def test_sealed_answer_travels_end_to_end_and_the_server_reads_nothing(
    client: AppClient, network: Network, matched: Matched, session: Session
) -> None:
    # Requester: seal the applicant's details to the holder, open the request.
    details = sealed_details_hex(matched, network, APPLICANT)
    request = await open_request(client, network, matched, sealed_applicant_details=details)

    # Holder: sees the request, opens the details and checks the requester's signature.
    listed = ok(await client.get("/v1/disclosure-requests", headers=network.a_focal.headers))
    (incoming,) = listed["items"]
    directory = ok(await client.get("/v1/directory", headers=network.a_focal.headers))
    requester_keys = directory_keys(directory, incoming["requester_org_id"])
    opened = open_applicant_details(
        bytes.fromhex(incoming["sealed_applicant_details"]),
        bytes(network.org_a_keys.x25519),
        requester_ed25519_public=requester_keys["ed25519"],
        expected_consent_id=incoming["consent_id"],
        expected_entry_id=incoming["entry_id"],
        expected_requester_org_id=incoming["requester_org_id"],
        expected_holder_org_id=network.org_a.id,
    )
    assert opened.signature_verified
    assert opened.details.applicant["full_name"] == APPLICANT["full_name"]

    ok(
        await client.post(
            f"/v1/disclosure-requests/{incoming['id']}/acknowledge",
            headers=network.a_focal.headers,
        )
    )
    sealed = sealed_answer_hex(
        incoming,
        network.org_a_keys,
        network.org_b_keys,
        same_person="confirmed",
        category="sexual_exploitation",
        child_victim=True,
        finding_date=date(2025, 3, 1),
        sanction="dismissal",
        text=TEXT,
        contact=CONTACT,
    )
    ok(
        await client.post(
            f"/v1/disclosure-requests/{incoming['id']}/answer",
            headers=network.a_focal.headers,
            json={"sealed_answer": sealed},
        )
    )

    # While the answer waits on the server: nothing of it, nor of the details, in any table.
    stored = dump(session)
    assert sealed in stored  # the dump does see the ciphertext (the search works)
    for secret in (TEXT, CONTACT, "INV-QX-77341", *APPLICANT.values()):
        assert secret not in stored, secret
    # The verdict words never appear: the state is "answered", never "confirmed".
    for verdict in ("confirmed", "not_same_person", "sexual_exploitation"):
        assert verdict not in stored, verdict

    # Requester: fetch, open with its own key, verify the holder's signature from the directory.
    mine = ok(
        await client.get(f"/v1/disclosure-requests/{request['id']}", headers=network.b_hr.headers)
    )
    holder_keys = directory_keys(
        ok(await client.get("/v1/directory", headers=network.b_hr.headers)), mine["holder_org_id"]
    )
    answer = open_answer(
        bytes.fromhex(mine["sealed_answer"]),
        bytes(network.org_b_keys.x25519),
        holder_keys["ed25519"],
        request["id"],
        expected_holder_org_id=network.org_a.id,
        expected_requester_org_id=network.org_b.id,
    )
    assert answer.same_person == "confirmed"
    assert answer.category == "sexual_exploitation" and answer.child_victim is True
    assert answer.text == TEXT and answer.contact == CONTACT
    # The same bytes checked against another organisation's key are refused.
    with pytest.raises(VerifyError):
        open_answer(
            bytes.fromhex(mine["sealed_answer"]),
            bytes(network.org_b_keys.x25519),
            requester_keys["ed25519"],
            request["id"],
        )

    ok(
        await client.post(
            f"/v1/disclosure-requests/{request['id']}/close", headers=network.b_hr.headers
        )
    )
    # After reading, not even the ciphertext is kept.
    assert sealed not in dump(session)
