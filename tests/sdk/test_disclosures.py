"""The disclosure step through the SDK against the real app: a request names a check and an
entry it claimed and always carries the applicant's sealed details; the holder opens them and
answers, the requester opens and verifies; forged, replayed and re-keyed answers are refused
by the SDK, never shown; organisations' keys swapped in the directory are refused until
re-pinned."""

from __future__ import annotations

import dataclasses
import json
from datetime import date, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from client_sdk import (
    AsyncClient,
    CheckStatus,
    CredentialsError,
    DisclosureAnswer,
    DisclosureNotAuthentic,
    EntryNotClaimed,
    InvalidInput,
    InvalidTransition,
    OrgKeyChanged,
    OrgKeys,
    VerifiedAnswer,
    org_key_fingerprint,
)
from client_sdk.disclosures import DisclosureOps
from protocol.disclosure import Answer, seal_answer
from tests.factories import Network, ed25519_seed_hex
from tests.factories import OrgKeys as FactoryKeys
from tests.sdk.conftest import FAST_RETRY, SdkFactory, Tamper, case_fields, credentials_for
from tests.server.blindmatch.people import REGISTERED

pytestmark = pytest.mark.anyio

FORM = "ab" * 32


async def matched_request(
    sdk_for: SdkFactory, network: Network, clock: Any, **request_kwargs: Any
) -> tuple[Any, Any, str]:
    """org-a registers REGISTERED, org-b checks and asks (with the applicant's details);
    returns (focal, hr, request id)."""
    request_kwargs.setdefault("applicant", REGISTERED)
    focal, hr = sdk_for(network.a_focal), sdk_for(network.b_hr)
    today = clock.today()
    await focal.register_case(REGISTERED, case_fields(today))
    consent_id = await hr.record_consent(
        applicant_ref="APP-7",
        purpose="recruitment",
        position_ref="POS-7",
        form_sha256=FORM,
        self_declared_finding=False,
    )
    result = await hr.check_applicant(REGISTERED, consent_id)
    assert result.status is CheckStatus.MATCH
    (match,) = result.by_case()
    request_id = await hr.request_disclosure(match, consent_id, **request_kwargs)
    return focal, hr, request_id


async def test_request_answer_and_verified_reading_end_to_end(
    sdk_for: SdkFactory, network: Network, clock: Any
) -> None:
    focal, hr, request_id = await matched_request(sdk_for, network, clock, applicant=REGISTERED)

    (incoming,) = await focal.list_disclosures(role="holder", state="requested")
    assert incoming.id == request_id and incoming.requester_org == "org-b"
    details = await focal.read_applicant_details(request_id)
    assert details is not None and details.signed
    assert details.applicant["full_name"] == REGISTERED["full_name"]
    assert details.applicant["date_of_birth"] == "1988-04-12"

    acked = await focal.acknowledge_disclosure(request_id)
    assert acked.state == "acknowledged"
    answered = await focal.answer_disclosure(
        request_id,
        DisclosureAnswer(
            same_person="confirmed",
            category="sexual_abuse",
            finding_date=clock.today() - timedelta(days=60),
            sanction="dismissal",
            text="Dismissed after a substantiated investigation.",
            contact="pseah@org-a.example",
        ),
    )
    assert answered.state == "answered"

    answer = await hr.read_disclosure_answer(request_id)
    assert isinstance(answer, VerifiedAnswer)
    assert answer.same_person == "confirmed"
    assert answer.holder_org == "org-a"
    assert answer.finding_date == clock.today() - timedelta(days=60)
    assert answer.as_dict()["finding_date"] == answer.finding_date.isoformat()

    closed = await hr.close_disclosure(request_id)
    assert closed.state == "closed" and closed.sealed_answer is None
    reported = await hr.report_outcome(request_id, "not_hired_disclosure")
    assert reported.outcome == "not_hired_disclosure"


async def test_answer_signed_by_anyone_but_the_holder_is_rejected(
    sdk_for: SdkFactory, network: Network, clock: Any, app: FastAPI
) -> None:
    _focal, hr, request_id = await matched_request(sdk_for, network, clock)
    # A forger with the holder focal point's sign-in but not the holder organisation's signing
    # key (say a stolen account): its answer is stored, but no requester will believe it.
    creds = dataclasses.replace(
        credentials_for(network.a_focal, network, server_keys=app.state.ctx.keys),
        org_keys=OrgKeys.from_dict(FactoryKeys.generate().credentials_dict()),
    )
    async with AsyncClient(
        creds,
        transport=httpx.ASGITransport(app=app),
        retry=FAST_RETRY,
        clock=lambda: clock().timestamp(),
    ) as forger:
        await forger.answer_disclosure(request_id, DisclosureAnswer(same_person="not_same_person"))

    with pytest.raises(DisclosureNotAuthentic):
        await hr.read_disclosure_answer(request_id)


async def test_answer_made_for_another_request_is_rejected(
    sdk_for: SdkFactory, network: Network, clock: Any, app: FastAPI
) -> None:
    focal, _hr, request_id = await matched_request(sdk_for, network, clock)
    await focal.answer_disclosure(request_id, DisclosureAnswer(same_person="not_same_person"))
    # A genuine holder answer, made for another request, swapped in on the way (a replay).
    other = Answer(
        request_id="00000000-0000-4000-8000-000000000000",
        holder_org_id=network.org_a.id,
        requester_org_id=network.org_b.id,
        same_person="not_same_person",
    )
    replayed = seal_answer(
        other,
        bytes.fromhex(ed25519_seed_hex(network.org_a_keys.ed25519)),
        bytes(network.org_b_keys.x25519.public_key),
    ).hex()

    def swap(body: dict[str, Any]) -> None:
        body["sealed_answer"] = replayed

    tampered = sdk_for(
        network.b_hr,
        transport=Tamper(
            httpx.ASGITransport(app=app), path=f"/v1/disclosure-requests/{request_id}", edit=swap
        ),
    )
    with pytest.raises(DisclosureNotAuthentic):
        await tampered.read_disclosure_answer(request_id)


async def test_directory_that_lies_about_the_holders_key_is_caught(
    sdk_for: SdkFactory, network: Network, clock: Any, app: FastAPI
) -> None:
    focal, _hr, request_id = await matched_request(sdk_for, network, clock)
    await focal.answer_disclosure(request_id, DisclosureAnswer(same_person="not_same_person"))

    def rekey(body: dict[str, Any]) -> None:
        for entry in body["items"]:
            if entry["id"] == network.org_a.id:
                entry["ed25519_public_key"] = FactoryKeys.generate().ed25519_public_hex

    lied_to = sdk_for(
        network.b_hr,
        transport=Tamper(httpx.ASGITransport(app=app), path="/v1/directory", edit=rekey),
    )
    with pytest.raises(DisclosureNotAuthentic):
        await lied_to.read_disclosure_answer(request_id)
    # With the holder's key known out of band, the directory is not consulted at all.
    answer = await lied_to.read_disclosure_answer(
        request_id, holder_ed25519_public=bytes.fromhex(network.org_a_keys.ed25519_public_hex)
    )
    assert answer.same_person == "not_same_person"


async def test_refusals_map_to_their_exceptions(
    sdk_for: SdkFactory, network: Network, clock: Any
) -> None:
    focal, hr, request_id = await matched_request(sdk_for, network, clock)
    with pytest.raises(InvalidTransition) as refused:
        await hr.close_disclosure(request_id)
    assert refused.value.state == "requested"

    consent_id = await hr.record_consent(
        applicant_ref="APP-8",
        purpose="recruitment",
        position_ref="POS-8",
        form_sha256=FORM,
        self_declared_finding=False,
    )
    result = await hr.check_applicant(REGISTERED, consent_id)
    match = result.by_case()[0]
    # An entry the check did not claim: refused, whatever entry id is named.
    unclaimed = dataclasses.replace(match, entry_id="00000000-0000-4000-8000-000000000000")
    with pytest.raises(EntryNotClaimed):
        await hr.request_disclosure(unclaimed, applicant=REGISTERED)
    with pytest.raises(InvalidInput):
        await hr.request_disclosure(match, "00000000-0000-4000-8000-000000000000", REGISTERED)
    # The applicant's details are not optional.
    with pytest.raises(InvalidInput, match="always carries"):
        await hr.request_disclosure(match)
    # Answers are validated before anything is sealed or sent.
    with pytest.raises(InvalidInput):
        await focal.answer_disclosure(request_id, DisclosureAnswer(same_person="confirmed"))
    with pytest.raises(InvalidInput):
        await hr.read_disclosure_answer(request_id)  # nothing to read yet


async def test_a_withdrawn_request_still_takes_the_hiring_outcome(
    sdk_for: SdkFactory, network: Network, clock: Any
) -> None:
    _focal, hr, request_id = await matched_request(sdk_for, network, clock)
    withdrawn = await hr.withdraw_disclosure(request_id)
    assert withdrawn.state == "withdrawn"
    reported = await hr.report_outcome(request_id, "not_hired_other")
    assert reported.outcome == "not_hired_other"


async def test_lookup_code_round_trip(sdk_for: SdkFactory, network: Network, clock: Any) -> None:
    hr = sdk_for(network.b_hr)
    receipt = await hr.record_consent_receipt(
        applicant_ref="APP-9",
        purpose="recruitment",
        position_ref="POS-9",
        form_sha256=FORM,
        self_declared_finding=False,
    )
    assert receipt.lookup_code
    found = await hr.consent_lookup(receipt.lookup_code)
    assert found.consent_id == receipt.id and found.status == "active" and found.checks == []
    gone = await hr.consent_lookup_withdraw(receipt.lookup_code.lower())
    assert gone.status == "withdrawn"


async def test_disclosures_need_the_organisation_keys(network: Network) -> None:
    creds = dataclasses.replace(credentials_for(network.b_hr), org_keys=None)
    ops = DisclosureOps(creds)
    with pytest.raises(CredentialsError):
        next(ops.read_disclosure_answer("00000000-0000-4000-8000-000000000000"))


def test_answer_dict_is_json_ready() -> None:
    answer = VerifiedAnswer(
        request_id="r",
        holder_org_id="h",
        holder_org="org-a",
        same_person="confirmed",
        category="sexual_abuse",
        finding_date=date(2025, 1, 2),
        sanction="dismissal",
    )
    assert json.loads(json.dumps(answer.as_dict()))["finding_date"] == "2025-01-02"


async def swap_org_keys(sdk_for: SdkFactory, network: Network, org_id: str) -> FactoryKeys:
    """The network admin registers new public keys for an organisation (PATCH /v1/orgs/{id}),
    as a compromised or mistaken server would serve them; returns the new key pairs."""
    new = FactoryKeys.generate()
    admin = sdk_for(network.admin)
    response = await admin.request(
        "PATCH",
        f"/v1/orgs/{org_id}",
        json={
            "x25519_public_key": new.x25519_public_hex,
            "ed25519_public_key": new.ed25519_public_hex,
        },
    )
    assert response.status_code == 200, response.text
    return new


async def fresh_match(hr: AsyncClient, ref: str) -> tuple[str, Any]:
    consent_id = await hr.record_consent(
        applicant_ref=ref,
        purpose="recruitment",
        position_ref="POS-K",
        form_sha256=FORM,
        self_declared_finding=False,
    )
    result = await hr.check_applicant(REGISTERED, consent_id)
    return consent_id, result.by_case()[0]


async def test_swapped_holder_keys_are_refused_for_reading_and_sealing_until_re_pinned(
    sdk_for: SdkFactory, network: Network, clock: Any, app: FastAPI
) -> None:
    # org-b's HR pins org-a's keys when it seals the details; org-a answers with its real key.
    focal, hr, request_id = await matched_request(sdk_for, network, clock, applicant=REGISTERED)
    await focal.answer_disclosure(request_id, DisclosureAnswer(same_person="not_same_person"))
    assert (await hr.org_keys("org-a")).ed25519.hex() == network.org_a_keys.ed25519_public_hex

    new = await swap_org_keys(sdk_for, network, network.org_a.id)

    # Reading the answer: the directory now names another signing key; the SDK does not even
    # try it (with the swapped key a forged answer would verify).
    with pytest.raises(OrgKeyChanged) as refused:
        await hr.read_disclosure_answer(request_id)
    assert refused.value.org == "org-a" and set(refused.value.changed) == {"x25519", "ed25519"}
    assert refused.value.directory_fingerprint == org_key_fingerprint(
        bytes.fromhex(new.x25519_public_hex), bytes.fromhex(new.ed25519_public_hex)
    )
    # Sealing details: nothing is sealed to the swapped key, and no request is opened.
    _consent, match = await fresh_match(hr, "APP-K1")
    with pytest.raises(OrgKeyChanged):
        await hr.request_disclosure(match, applicant=REGISTERED)
    assert [d.id for d in await hr.list_disclosures(role="requester")] == [request_id]
    with pytest.raises(OrgKeyChanged):
        await hr.verify_directory()

    # A fingerprint that does not match what the directory serves pins nothing.
    with pytest.raises(OrgKeyChanged):
        await hr.trust_org_keys("org-a", fingerprint=refused.value.pinned_fingerprint)
    with pytest.raises(OrgKeyChanged):
        await hr.request_disclosure(match, applicant=REGISTERED)

    # Confirmed out of band: org-a read its new fingerprint out; re-pinning accepts the keys.
    trusted = await hr.trust_org_keys(
        network.org_a.id, fingerprint=refused.value.directory_fingerprint.replace("-", " ")
    )
    assert trusted.ed25519.hex() == new.ed25519_public_hex
    assert [k.org_id for k in await hr.verify_directory()] == [network.org_a.id]
    second = await hr.request_disclosure(match, applicant=REGISTERED)

    # org-a with its new keys opens details sealed to the new key and answers; org-b verifies.
    creds = dataclasses.replace(
        credentials_for(network.a_focal, network, server_keys=app.state.ctx.keys),
        org_keys=OrgKeys.from_dict(new.credentials_dict()),
    )
    async with AsyncClient(
        creds,
        transport=httpx.ASGITransport(app=app),
        retry=FAST_RETRY,
        clock=lambda: clock().timestamp(),
    ) as rekeyed:
        details = await rekeyed.read_applicant_details(second)
        assert details is not None and details.signed
        await rekeyed.answer_disclosure(second, DisclosureAnswer(same_person="not_same_person"))
    answer = await hr.read_disclosure_answer(second)
    assert answer.same_person == "not_same_person" and answer.holder_org == "org-a"
    # Trust is in keys, not in history: the first answer was signed with the old key.
    with pytest.raises(DisclosureNotAuthentic):
        await hr.read_disclosure_answer(request_id)


async def test_swapped_requester_keys_are_refused_by_the_holder(
    sdk_for: SdkFactory, network: Network, clock: Any
) -> None:
    focal, hr, request_id = await matched_request(sdk_for, network, clock, applicant=REGISTERED)
    assert (await focal.read_applicant_details(request_id)) is not None  # pins org-b's keys
    await swap_org_keys(sdk_for, network, network.org_b.id)

    # Opening the details would verify org-b's signature with the swapped key; answering
    # would seal the verdict to it: both refused before any crypto or request.
    with pytest.raises(OrgKeyChanged):
        await focal.read_applicant_details(request_id)
    with pytest.raises(OrgKeyChanged):
        await focal.answer_disclosure(request_id, DisclosureAnswer(same_person="not_same_person"))
    assert (await hr.get_disclosure(request_id)).state == "requested"


async def test_first_use_pins_and_the_same_keys_are_accepted_again(
    sdk_for: SdkFactory, network: Network
) -> None:
    hr = sdk_for(network.b_hr)
    assert await hr.verify_directory() == []  # nothing pinned yet, nothing checked
    first = await hr.org_keys("org-a")
    assert first.org_id == network.org_a.id and first.short_name == "org-a"
    assert await hr.org_keys(network.org_a.id) == first
    assert await hr.verify_directory() == [first]
    with pytest.raises(InvalidInput):
        await hr.trust_org_keys("org-a", fingerprint="not a fingerprint")
    with pytest.raises(InvalidInput):  # a name typed by a person, not an answer off contract
        await hr.org_keys("no-such-org")
