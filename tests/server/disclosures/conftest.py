"""Fixtures of the disclosure tests: a real match (org-a registers, org-b's HR checks) with the
pseudonyms `P` the checking client derived, so requests carry real match proofs.

    matched = await match(client, network, clock)        # org-b's HR matched org-a's case
    request = await open_request(client, network, matched)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

import httpx
import pytest

from protocol.disclosure import Answer, ApplicantDetails, seal_answer, seal_applicant_details
from protocol.identity import derive_keys
from protocol.pseudonym import Handle, bucket, match_proof, open_handle, tag
from tests.blindflow import (
    build_check_request,
    fetch_key,
    record_consent,
    register_person,
    unblind_verified,
)
from tests.factories import AppClient, Network, OrgKeys, ed25519_seed_hex
from tests.server.blindmatch.people import REGISTERED

Person = Mapping[str, object]


@dataclass(frozen=True)
class Found:
    """One matched entry, with the `P` the checker derived (kept in memory only)."""

    handle: Handle
    p: bytes

    def proof(self, consent_id: str) -> str:
        return match_proof(self.p, consent_id).hex()


@dataclass(frozen=True)
class Matched:
    case: dict[str, Any]
    consent: dict[str, Any]
    found: list[Found]

    @property
    def consent_id(self) -> str:
        return str(self.consent["id"])

    @property
    def first(self) -> Found:
        return self.found[0]

    def body(self, **overrides: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "consent_id": self.consent_id,
            "entry_id": self.first.handle.entry_id,
            "match_proof": self.first.proof(self.consent_id),
        }
        body.update(overrides)
        return body


async def check_and_find(
    client: httpx.AsyncClient,
    headers: Mapping[str, str],
    consent_id: str,
    person: Person,
    bucket_bits: int,
) -> list[Found]:
    """A real check; returns each matched entry with its `P`."""
    server_key = await fetch_key(client, headers)
    keys = derive_keys(person)
    batch, body = build_check_request(server_key, consent_id, keys, bucket_bits)
    response = await client.post("/v1/checks", headers=dict(headers), json=body)
    assert response.status_code == 200, response.text
    answer = response.json()
    elements = unblind_verified(server_key, batch, answer)
    entries = {b["bucket"]: b["entries"] for b in answer["buckets"]}
    found: list[Found] = []
    for key, p in zip(keys, elements, strict=True):
        for entry in entries[bucket(key.value, bucket_bits)]:
            if entry["tag"] == tag(p).hex():
                handle = open_handle(p, bytes.fromhex(entry["sealed_handle"]))
                assert handle is not None
                found.append(Found(handle=handle, p=p))
    return found


async def match(
    client: AppClient,
    network: Network,
    today: date,
    *,
    person: Person = REGISTERED,
    case_overrides: Mapping[str, Any] | None = None,
    **consent_overrides: Any,
) -> Matched:
    """org-a's focal point registers `person`; org-b's HR records a consent and checks."""
    case = await register_person(
        client, network.a_focal.headers, person, today=today, **dict(case_overrides or {})
    )
    consent = await record_consent(
        client, network.b_hr.headers, now=client.ctx.now(), **consent_overrides
    )
    found = await check_and_find(
        client, network.b_hr.headers, consent["id"], person, client.ctx.policy.bucket_bits
    )
    assert found, "the registered person must match"
    return Matched(case=case, consent=consent, found=found)


@pytest.fixture
async def matched(client: AppClient, network: Network) -> Matched:
    return await match(client, network, client.ctx.now().date(), max_checks=3)


def ok(response: httpx.Response, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.text
    data = response.json()
    assert isinstance(data, dict)
    return data


async def open_request(
    client: AppClient, network: Network, matched: Matched, **overrides: Any
) -> dict[str, Any]:
    response = await client.post(
        "/v1/disclosure-requests", headers=network.b_hr.headers, json=matched.body(**overrides)
    )
    return ok(response, 201)


def sealed_answer_hex(
    request: Mapping[str, Any],
    holder_keys: OrgKeys,
    requester_keys: OrgKeys,
    **fields: Any,
) -> str:
    """The holder's answer as the SDK makes it: signed by the holder, sealed to the requester."""
    values: dict[str, Any] = {"same_person": "not_same_person"}
    values.update(fields)
    answer = Answer(
        request_id=request["id"],
        holder_org_id=request["holder_org_id"],
        requester_org_id=request["requester_org_id"],
        **values,
    )
    seed = bytes.fromhex(ed25519_seed_hex(holder_keys.ed25519))
    return seal_answer(answer, seed, bytes(requester_keys.x25519.public_key)).hex()


def sealed_details_hex(matched: Matched, network: Network, applicant: Mapping[str, str]) -> str:
    details = ApplicantDetails(
        consent_id=matched.consent_id,
        entry_id=matched.first.handle.entry_id,
        requester_org_id=network.org_b.id,
        holder_org_id=network.org_a.id,
        applicant=applicant,
    )
    seed = bytes.fromhex(ed25519_seed_hex(network.org_b_keys.ed25519))
    return seal_applicant_details(details, bytes(network.org_a_keys.x25519.public_key), seed).hex()


async def answer_request(
    client: AppClient, network: Network, request: Mapping[str, Any], **fields: Any
) -> dict[str, Any]:
    sealed = sealed_answer_hex(request, network.org_a_keys, network.org_b_keys, **fields)
    response = await client.post(
        f"/v1/disclosure-requests/{request['id']}/answer",
        headers=network.a_focal.headers,
        json={"sealed_answer": sealed},
    )
    return ok(response)
