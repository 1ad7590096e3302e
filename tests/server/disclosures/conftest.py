"""Fixtures of the disclosure tests: a real match (org-a registers, org-b's HR checks under a
consent and claims its hits), so requests name a check and an entry that check's claim verified,
and carry the applicant's details sealed to the holder.

    matched = await match(client, network, clock.today())  # org-b's HR matched org-a's case
    request = await open_request(client, network, matched)
    again = await recheck(client, network, matched)         # another check, same consent
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

import httpx
import pytest

from protocol.disclosure import Answer, ApplicantDetails, seal_answer, seal_applicant_details
from protocol.identity import derive_keys
from server.registry.models import Organisation
from tests.blindflow import (
    Match,
    build_check_request,
    claim_hits,
    fetch_key,
    record_consent,
    register_person,
)
from tests.factories import Actor, AppClient, Network, OrgKeys, ed25519_seed_hex
from tests.server.blindmatch.people import REGISTERED

Person = Mapping[str, object]

#: What the requester declares about the applicant, sealed to the holder with every request.
DECLARED = {"full_name": "Siti Rahmawati", "date_of_birth": "1988-04-12"}


@dataclass(frozen=True)
class Checked:
    """A check run and claimed: its id, and each claimed entry that opened."""

    check_id: str
    matches: list[Match]


async def check_and_claim(
    client: httpx.AsyncClient,
    headers: Mapping[str, str],
    consent_id: str,
    person: Person,
    *,
    only: set[int] | None = None,
) -> Checked:
    """A real check of `person` under `consent_id`, then a claim of every hit (or of the keys
    `only` names, by index into `derive_keys(person)`)."""
    server_key = await fetch_key(client, headers)
    batch, body = build_check_request(server_key, consent_id, derive_keys(person))
    response = await client.post("/v1/checks", headers=dict(headers), json=body)
    assert response.status_code == 200, response.text
    answer = response.json()
    entries, matches = await claim_hits(
        client, headers, server_key, batch, answer, consent_id, only=only
    )
    assert entries is None or entries.status_code == 200, entries.text
    return Checked(check_id=answer["check_id"], matches=matches)


def sealed_details(
    *,
    consent_id: str,
    entry_id: str,
    requester: Organisation,
    requester_keys: OrgKeys,
    holder: Organisation,
    holder_keys: OrgKeys,
    applicant: Mapping[str, str] = DECLARED,
) -> str:
    details = ApplicantDetails(
        consent_id=consent_id,
        entry_id=entry_id,
        requester_org_id=requester.id,
        holder_org_id=holder.id,
        applicant=applicant,
    )
    seed = bytes.fromhex(ed25519_seed_hex(requester_keys.ed25519))
    return seal_applicant_details(details, bytes(holder_keys.x25519.public_key), seed).hex()


@dataclass(frozen=True)
class Matched:
    """org-a's case, org-b's consent, and a check under it whose claims opened the case's
    entries; `details` are the declared details sealed to org-a for the first entry."""

    case: dict[str, Any]
    consent: dict[str, Any]
    check_id: str
    matches: list[Match]
    details: str

    @property
    def consent_id(self) -> str:
        return str(self.consent["id"])

    @property
    def first(self) -> Match:
        return self.matches[0]

    def of_case(self, case_id: str) -> list[Match]:
        return [m for m in self.matches if m.handle.case_id == case_id]

    def body(self, **overrides: Any) -> dict[str, Any]:
        """A request for the first claimed entry of the case; `overrides` replace members."""
        body: dict[str, Any] = {
            "check_id": self.check_id,
            "entry_id": self.of_case(self.case["id"])[0].handle.entry_id,
            "sealed_applicant_details": self.details,
        }
        body.update(overrides)
        return body


async def match(
    client: AppClient,
    network: Network,
    today: date,
    *,
    person: Person = REGISTERED,
    case_overrides: Mapping[str, Any] | None = None,
    checker: Actor | None = None,
    **consent_overrides: Any,
) -> Matched:
    """org-a's focal point registers `person`; `checker` (org-b's HR) records a consent, checks
    and claims."""
    checker = checker or network.b_hr
    case = await register_person(
        client, network.a_focal.headers, person, today=today, **dict(case_overrides or {})
    )
    consent = await record_consent(
        client, checker.headers, now=client.ctx.now(), **consent_overrides
    )
    checked = await check_and_claim(client, checker.headers, consent["id"], person)
    mine = [m for m in checked.matches if m.handle.case_id == case["id"]]
    assert mine, "the registered person must match"
    requester_keys = (
        network.org_b_keys if checker.org_id == network.org_b.id else OrgKeys.generate()
    )
    details = sealed_details(
        consent_id=consent["id"],
        entry_id=mine[0].handle.entry_id,
        requester=checker.org,
        requester_keys=requester_keys,
        holder=network.org_a,
        holder_keys=network.org_a_keys,
    )
    return Matched(
        case=case,
        consent=consent,
        check_id=checked.check_id,
        matches=checked.matches,
        details=details,
    )


async def recheck(
    client: AppClient, network: Network, matched: Matched, *, person: Person = REGISTERED
) -> Matched:
    """Another check of `person` under `matched`'s consent (it spends one of its checks)."""
    checked = await check_and_claim(client, network.b_hr.headers, matched.consent_id, person)
    return replace(matched, check_id=checked.check_id, matches=checked.matches)


async def request_under_new_consent(
    client: AppClient, network: Network, matched: Matched
) -> tuple[dict[str, Any], str]:
    """Another applicant consent of org-b whose check matches the same record, and a request
    under it; returns the request and the consent id."""
    consent = await record_consent(client, network.b_hr.headers, now=client.ctx.now())
    checked = await check_and_claim(client, network.b_hr.headers, consent["id"], REGISTERED)
    entry = next(m for m in checked.matches if m.handle.case_id == matched.case["id"])
    body = {
        "check_id": checked.check_id,
        "entry_id": entry.handle.entry_id,
        "sealed_applicant_details": sealed_details(
            consent_id=consent["id"],
            entry_id=entry.handle.entry_id,
            requester=network.org_b,
            requester_keys=network.org_b_keys,
            holder=network.org_a,
            holder_keys=network.org_a_keys,
        ),
    }
    response = await client.post("/v1/disclosure-requests", headers=network.b_hr.headers, json=body)
    return ok(response, 201), consent["id"]


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
    return sealed_details(
        consent_id=matched.consent_id,
        entry_id=matched.body()["entry_id"],
        requester=network.org_b,
        requester_keys=network.org_b_keys,
        holder=network.org_a,
        holder_keys=network.org_a_keys,
        applicant=applicant,
    )


async def answer_request(
    client: AppClient, network: Network, request: Mapping[str, Any], **fields: Any
) -> dict[str, Any]:
    """The holder's answer; `not_same_person` (what the server counts) follows the verdict."""
    sealed = sealed_answer_hex(request, network.org_a_keys, network.org_b_keys, **fields)
    verdict = fields.get("same_person", "not_same_person")
    response = await client.post(
        f"/v1/disclosure-requests/{request['id']}/answer",
        headers=network.a_focal.headers,
        json={"sealed_answer": sealed, "not_same_person": verdict == "not_same_person"},
    )
    return ok(response)
