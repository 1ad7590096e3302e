"""Attacks of a member fishing without consent (issue 12, "Fishing"), each refused.

Version 1 let a focal point evaluate any identifier (`POST /v1/oprf/evaluate`), find the person's
entries in the registry and open a disclosure request under a fresh consent no check had used.
Version 2 has one evaluation outside registration, the consented check, and hands out entries
only against a claim proven with that check's own evaluation (docs/protocol.md, "Check", step
5): the tests below try each way around that.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from protocol.entry import hash_to_group, tag
from protocol.identity import derive_keys
from server.audit.models import AuditEntry
from server.auth.permissions import Role
from server.cases.models import Pseudonym
from server.checks.models import Check, CheckClaim
from server.context import AppContext
from server.retention.services import run_sweep
from tests.blindflow import (
    fetch_key,
    record_consent,
    register_person,
)
from tests.conftest import MutableClock
from tests.factories import AppClient, Network, auth_headers, make_principal
from tests.server.blindmatch.claims import post_claims, run_check
from tests.server.blindmatch.people import OTHER, REGISTERED
from tests.server.blindmatch.stored import pseudonym

pytestmark = pytest.mark.anyio


def _claims(session: Session) -> int:
    session.expire_all()
    return int(session.scalar(select(func.count()).select_from(CheckClaim)) or 0)


@pytest.fixture
async def registered(client: AppClient, network: Network, clock: MutableClock) -> dict[str, Any]:
    return await register_person(client, network.a_focal.headers, REGISTERED, today=clock.today())


# --- no evaluation outside a check --------------------------------------------------------------


async def test_no_endpoint_evaluates_an_identifier_outside_a_check(
    client: AppClient, network: Network
) -> None:
    element = hash_to_group(derive_keys(REGISTERED)[0].value).hex()
    for actor in (network.a_focal, network.b_hr, network.admin):
        evaluate = await client.post(
            "/v1/oprf/evaluate",
            headers=actor.headers,
            json={"purpose": "register", "blinded_elements": [element]},
        )
        assert evaluate.status_code in (404, 405), evaluate.text
        assert (await client.get("/v1/oprf/key", headers=actor.headers)).status_code == 404
    # The API description agrees: one operation takes elements to evaluate, the check.
    spec = client.app.openapi()
    takes_elements = sorted(
        f"{method.upper()} {path}"
        for path, operations in spec["paths"].items()
        for method, operation in operations.items()
        if any("element" in name for name in _request_fields(spec, operation))
    )
    assert takes_elements == ["POST /v1/checks"]
    # Registration takes keys only sealed to the server, never an element in the clear.
    assert "sealed_keys" in _request_fields(spec, spec["paths"]["/v1/cases"]["post"])


def _request_fields(spec: dict[str, Any], operation: dict[str, Any]) -> set[str]:
    """Every property name reachable from the operation's request body schema."""
    names: set[str] = set()
    seen: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref not in seen:
                seen.add(ref)
                walk(spec["components"]["schemas"][ref.rsplit("/", 1)[1]])
            names.update(node.get("properties", {}))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(operation.get("requestBody", {}))
    return names


async def test_registration_answers_no_pseudonym_and_only_its_own_cases_values(
    client: AppClient, network: Network, clock: MutableClock, ctx: AppContext, session: Session
) -> None:
    """A focal point registering someone learns the case's own filter values and pads, which
    it needs for `verify-live`, and nothing that would let it test a key: no `P`, no tag."""
    earlier = await register_person(client, network.b_focal.headers, OTHER, today=clock.today())
    server_key = await fetch_key(client, network.a_focal.headers)
    from tests.blindflow import case_body

    keys = derive_keys(REGISTERED)
    response = await client.post(
        "/v1/cases",
        headers=network.a_focal.headers,
        json=case_body(server_key, keys, today=clock.today()),
    )
    assert response.status_code == 201, response.text
    text = response.text
    for key in keys:
        p = pseudonym(ctx.keys, key)
        for secret in (p, tag(p), hash_to_group(key.value)):
            assert secret.hex() not in text
    answer = response.json()
    own = {
        int.from_bytes(bytes(t)[:6], "big")
        for t in session.scalars(
            select(Pseudonym.tag).where(Pseudonym.case_id == answer["case"]["id"])
        )
    }
    assert set(answer["filter_values"]["filter_values"]) == own
    assert not set(earlier["filter_values"]["filter_values"]) & own


# --- claims --------------------------------------------------------------------------------


async def test_a_claim_proven_for_another_checks_evaluation_is_refused(
    client: AppClient, network: Network, clock: MutableClock, registered: dict, session: Session
) -> None:
    consent = await record_consent(client, network.b_hr.headers, now=clock(), max_checks=2)
    a = await run_check(client, network.b_hr.headers, consent["id"])
    b = await run_check(client, network.b_hr.headers, consent["id"])
    headers = network.b_hr.headers
    replayed = await post_claims(client, headers, b.check_id, [a.claim(0)])
    # Made with A's blind and A's Z but naming B and B's slot: B's own Z is what is checked.
    a_for_b = a.claim(0, check_id=b.check_id, index=b.batch.slots[0])
    moved = await post_claims(client, headers, b.check_id, [a_for_b])
    # Any other 64 bytes: no proof at all.
    forged = {**b.claim(0), "proof": os.urandom(64).hex()}
    guessed = await post_claims(client, headers, b.check_id, [forged])
    for response in (replayed, moved, guessed):
        assert response.status_code == 422, response.text
        assert response.json()["type"] == "urn:refcheck:problem:claim-invalid"
    assert _claims(session) == 0
    # The control: each check's own claim is answered.
    for ran in (a, b):
        own = await post_claims(client, headers, ran.check_id, [ran.claim(0)])
        assert own.status_code == 200 and len(own.json()["entries"]) == 1


async def test_known_tags_without_a_proof_of_the_checks_evaluation_fetch_nothing(
    client: AppClient, network: Network, clock: MutableClock, registered: dict, session: Session
) -> None:
    """Tags are stored in the database; holding them (a stolen dump, an earlier claim) is not
    enough to be handed the entries: the proof needs the blind of this check's element."""
    consent = await record_consent(client, network.b_hr.headers, now=clock())
    # A check of someone else: the client holds no blind for REGISTERED's keys.
    ran = await run_check(client, network.b_hr.headers, consent["id"], OTHER)
    stolen = [
        bytes(t)
        for t in session.scalars(select(Pseudonym.tag).where(Pseudonym.case_id == registered["id"]))
    ]
    claims = [
        {"index": i, "tag": t.hex(), "proof": ran.claim(0)["proof"]} for i, t in enumerate(stolen)
    ]
    response = await post_claims(client, network.b_hr.headers, ran.check_id, claims[:5])
    assert response.status_code == 422
    assert response.json()["type"] == "urn:refcheck:problem:claim-invalid"
    assert _claims(session) == 0


async def test_a_claim_by_another_principal_even_of_the_same_organisation_is_refused(
    client: AppClient, network: Network, clock: MutableClock, registered: dict, session: Session
) -> None:
    consent = await record_consent(client, network.b_hr.headers, now=clock())
    ran = await run_check(client, network.b_hr.headers, consent["id"])
    colleague, key = make_principal(session, network.org_b, [Role.HR_CHECKER])
    session.commit()
    colleague_headers = await auth_headers(client, colleague, key)
    for headers in (colleague_headers, network.a_hr.headers):
        response = await post_claims(client, headers, ran.check_id, [ran.claim(0)])
        assert response.status_code == 404
        assert response.json()["type"] == "urn:refcheck:problem:not-found"
    assert _claims(session) == 0
    mine = await post_claims(client, network.b_hr.headers, ran.check_id, [ran.claim(0)])
    assert mine.status_code == 200


async def test_a_repeated_claim_gets_the_same_answer_and_is_recorded_once(
    client: AppClient, network: Network, clock: MutableClock, registered: dict, session: Session
) -> None:
    consent = await record_consent(client, network.b_hr.headers, now=clock())
    ran = await run_check(client, network.b_hr.headers, consent["id"])
    claims = [ran.claim(0), ran.claim(1)]
    first = await post_claims(client, network.b_hr.headers, ran.check_id, claims)
    assert first.status_code == 200
    recorded = _claims(session)
    assert recorded == 2
    # A fresh proof (new nonce) for the same (check, index, tag): the same answer.
    again = await post_claims(
        client, network.b_hr.headers, ran.check_id, [ran.claim(1), ran.claim(0)]
    )
    assert again.status_code == 200
    assert sorted(e["tag"] for e in again.json()["entries"]) == sorted(
        e["tag"] for e in first.json()["entries"]
    )
    assert {e["sealed_handle"] for e in again.json()["entries"]} == {
        e["sealed_handle"] for e in first.json()["entries"]
    }
    assert _claims(session) == recorded
    audited = session.scalars(select(AuditEntry).where(AuditEntry.action == "check.claimed"))
    assert [(e.object_type, e.object_id) for e in audited] == [("check", ran.check_id)]


@pytest.mark.parametrize("after_sweep", [False, True])
async def test_claims_after_the_window_are_refused(
    client: AppClient,
    network: Network,
    clock: MutableClock,
    ctx: AppContext,
    registered: dict,
    session: Session,
    after_sweep: bool,
) -> None:
    consent = await record_consent(client, network.b_hr.headers, now=clock(), max_checks=2)
    window = ctx.policy.entry_fetch_window_seconds
    early = await run_check(client, network.b_hr.headers, consent["id"])
    late = await run_check(client, network.b_hr.headers, consent["id"])
    clock.advance(seconds=window)
    await network.b_hr.refresh(client)
    # The last second of the window still counts.
    ok = await post_claims(client, network.b_hr.headers, early.check_id, [early.claim(0)])
    assert ok.status_code == 200
    clock.advance(seconds=1)
    await network.b_hr.refresh(client)
    if after_sweep:
        run_sweep(ctx)
        session.expire_all()
        assert session.get(Check, late.check_id).evaluated is None  # type: ignore[union-attr]
    response = await post_claims(client, network.b_hr.headers, late.check_id, [late.claim(0)])
    assert response.status_code == 409
    assert response.json()["type"] == "urn:refcheck:problem:entry-window-closed"
    session.expire_all()
    assert {c.check_id for c in session.scalars(select(CheckClaim))} == {early.check_id}


async def test_a_disclosure_request_needs_the_checks_own_claim(
    client: AppClient, network: Network, clock: MutableClock, registered: dict
) -> None:
    """Version 1's attack: an entry learnt elsewhere, asked about under a fresh consent. Here
    the fresh consent's check (of someone else) claimed nothing, and the request is refused."""
    consent = await record_consent(client, network.b_hr.headers, now=clock())
    earlier = await run_check(client, network.b_hr.headers, consent["id"])
    answered = await post_claims(client, network.b_hr.headers, earlier.check_id, [earlier.claim(0)])
    [entry] = answered.json()["entries"]
    from protocol.entry import open_handle

    handle = open_handle(earlier.points[0], bytes.fromhex(entry["sealed_handle"]))
    assert handle is not None

    fresh = await record_consent(client, network.b_hr.headers, now=clock())
    unrelated = await run_check(client, network.b_hr.headers, fresh["id"], OTHER)
    response = await client.post(
        "/v1/disclosure-requests",
        headers=network.b_hr.headers,
        json={
            "check_id": unrelated.check_id,
            "entry_id": handle.entry_id,
            "sealed_applicant_details": "00" * _sealed_details_size(),
        },
    )
    assert response.status_code == 422
    assert response.json()["type"] == "urn:refcheck:problem:entry-not-claimed"


def _sealed_details_size() -> int:
    from protocol.disclosure import SEALED_DETAILS_SIZE

    return int(SEALED_DETAILS_SIZE)
