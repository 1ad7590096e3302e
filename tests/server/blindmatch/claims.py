"""A check as the HR client runs it, kept whole so a test can claim from it, or tamper with
its claims (the entries call, docs/protocol.md, "Check", step 5):

    ran = await run_check(client, hr.headers, consent_id, REGISTERED)
    response = await post_claims(client, hr.headers, ran.check_id, [ran.claim(0)])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from protocol.claim import prove_claim
from protocol.entry import tag
from protocol.identity import derive_keys
from tests.blindflow import (
    BlindedBatch,
    ServerKey,
    build_check_request,
    fetch_key,
    unblind_verified,
)
from tests.factories import AppClient
from tests.server.blindmatch.people import REGISTERED


@dataclass
class RanCheck:
    """A check as the HR client ran it: what it sent, what came back, and the `P` of each of
    the person's keys (`points[i]` for `batch.keys[i]`)."""

    server_key: ServerKey
    consent_id: str
    batch: BlindedBatch
    answer: dict[str, Any]
    points: list[bytes]

    @property
    def check_id(self) -> str:
        return str(self.answer["check_id"])

    def z(self, slot: int) -> bytes:
        return bytes.fromhex(self.answer["evaluated_elements"][slot])

    def claim(
        self,
        i: int,
        *,
        check_id: str | None = None,
        index: int | None = None,
    ) -> dict[str, Any]:
        """The claim of key `i`; `check_id` and `index` put another check's into it."""
        slot, p = self.batch.slots[i], self.points[i]
        if index is not None:
            slot = index
        proof = prove_claim(
            check_id=check_id or self.check_id,
            consent_id=self.consent_id,
            index=slot,
            tag=tag(p),
            p=p,
            z=self.z(self.batch.slots[i]),
            r=self.batch.blinds[i],
        )
        return {"index": slot, "tag": tag(p).hex(), "proof": proof.hex()}


async def run_check(
    client: AppClient, headers: dict[str, str], consent_id: str, person: Any = REGISTERED
) -> RanCheck:
    server_key = await fetch_key(client, headers)
    batch, body = build_check_request(server_key, consent_id, derive_keys(person))
    response = await client.post("/v1/checks", headers=headers, json=body)
    assert response.status_code == 200, response.text
    answer = response.json()
    points = unblind_verified(server_key, batch, answer)
    return RanCheck(server_key, consent_id, batch, answer, points)


async def post_claims(
    client: AppClient, headers: dict[str, str], check_id: str, claims: list[dict[str, Any]]
) -> Any:
    return await client.post(
        f"/v1/checks/{check_id}/entries", headers=headers, json={"claims": claims}
    )
