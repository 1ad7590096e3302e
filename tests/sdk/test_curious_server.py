"""What a curious server operator sees of a check of someone who is not registered: every request a
new client with a warm pin file sends, recorded at the transport. Only the token call, the
session's look at the transparency log (the signed tree head, and a consistency proof when the log
grew: two tree sizes, nothing of the applicant), at most one filter fetch, one `POST /v1/checks`
with the consent id, the key id and exactly `keys_per_check` elements, and at most one more filter
fetch; people with 8 and with 30 keys send requests that are alike in every count and length."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.orm import Session

from client_sdk import CheckStatus
from protocol.identity import derive_keys
from server.transparency.sealer import latest_head, seal
from tests.factories import Network
from tests.sdk.conftest import Recording, SdkFactory
from tests.sdk.test_client_app import case_fields, consent
from tests.server.blindmatch.people import REGISTERED

pytestmark = pytest.mark.anyio

# Invented people: one with few keys (a one-word name and a NIK), one with many.
FEW = {
    "full_name": "Joko",
    "date_of_birth": "1980-01-01",
    "nationality": "ID",
    "national_id": "3201234567890077",
}
MANY = {
    "full_name": "Muhammad Rizki Pratama Saputra",
    "date_of_birth": "1980-01-01",
    "nationality": "ID",
    "national_id": "3201234567890011",
    "email": "mrps@example.org",
}

#: A new session first compares the server's signing key with the credentials, unsigned-in.
KEYS = ("GET", "/v1/network/keys")
TOKEN = ("POST", "/v1/oauth/token")
CHECK = ("POST", "/v1/checks")
FILTER = ("GET", "/v1/registry/filter")
#: A client with a pin file then proves, once per session, that the transparency log only grew
#: since its last session (client_sdk.transparency.session_log_op): the signed tree head, and
#: one consistency proof between two tree sizes when the log grew since. Both are the same for
#: every session of every client; neither carries anything of the applicant.
STH = ("GET", "/v1/transparency/sth")
CONSISTENCY = ("GET", "/v1/transparency/consistency")


def sealed(session: Session, ctx: Any) -> int:
    """Sign a tree head over what was logged so far (the server's sealer does it every
    second); its size."""
    head = seal(session, ctx) or latest_head(session)
    session.commit()
    assert head is not None
    return head.tree_size


async def recorded_check(
    app: FastAPI, sdk_for: SdkFactory, network: Network, pins: Path, person: Any, consent_id: str
) -> list[httpx.Request]:
    """A new client (warm pin file, no filter file) checks `person`: every request it sent."""
    recording = Recording(httpx.ASGITransport(app=app))
    hr = sdk_for(network.b_hr, pin_file=pins, transport=recording)
    result = await hr.check_applicant(person, consent_id)
    assert result.status is CheckStatus.NO_MATCH
    return recording.requests


def assert_only_the_check(requests: list[httpx.Request], keys_per_check: int) -> httpx.Request:
    seen = [(r.method, r.url.path) for r in requests]
    assert seen[:3] == [KEYS, TOKEN, STH]
    assert "Authorization" not in requests[0].headers and not requests[0].url.params
    assert not requests[2].url.params
    start = 3
    if seen[3] == CONSISTENCY:
        assert set(requests[3].url.params) == {"first", "second"} and not requests[3].content
        start = 4
    checks = [i for i, call in enumerate(seen) if call == CHECK]
    assert len(checks) == 1, seen
    before, after = seen[start : checks[0]], seen[checks[0] + 1 :]
    assert before in ([], [FILTER]) and after in ([], [FILTER]), seen
    for r in requests:
        if (r.method, r.url.path) == FILTER:
            # Nothing of the applicant in a filter fetch: at most the hash of a filter held.
            assert set(r.url.params) <= {"since_sha256"} and not r.content
    check = requests[checks[0]]
    body = json.loads(check.content)
    assert set(body) == {"consent_id", "key_id", "blinded_elements"}
    assert len(body["blinded_elements"]) == keys_per_check
    assert len(set(body["blinded_elements"])) == keys_per_check
    return check


async def test_a_non_registered_person_costs_one_check_and_at_most_the_filter(
    app: FastAPI,
    sdk_for: SdkFactory,
    network: Network,
    clock: Any,
    ctx: Any,
    session: Session,
    tmp_path: Path,
) -> None:
    await sdk_for(network.a_focal).register_case(REGISTERED, case_fields(clock.today()))
    sealed(session, ctx)
    pins = tmp_path / "pins.json"
    warm = sdk_for(network.b_hr, pin_file=pins)
    await warm.oprf_key()  # keys, policy and the tree head now beside the pin file
    kpc = ctx.policy.keys_per_check
    assert len(derive_keys(FEW)) <= 8 and len(derive_keys(MANY)) >= 28

    first, second = await consent(warm), await consent(warm, applicant_ref="APP-2")
    sealed(session, ctx)  # the consents grew the log: the first session below proves it grew
    few = await recorded_check(app, sdk_for, network, pins, FEW, first)
    many = await recorded_check(app, sdk_for, network, pins, MANY, second)
    few_check = assert_only_the_check(few, kpc)
    many_check = assert_only_the_check(many, kpc)
    assert CONSISTENCY in [(r.method, r.url.path) for r in few]
    # Same shape to the byte: same field lengths, same count, same length of every element.
    assert len(few_check.content) == len(many_check.content)
    # The log did not grow between the two sessions: the second only reads the head.
    assert [(r.method, r.url.path) for r in few if (r.method, r.url.path) != CONSISTENCY] == [
        (r.method, r.url.path) for r in many
    ]


async def test_a_client_holding_the_current_filter_sends_only_the_check(
    app: FastAPI, sdk_for: SdkFactory, network: Network, clock: Any, ctx: Any, tmp_path: Path
) -> None:
    await sdk_for(network.a_focal).register_case(REGISTERED, case_fields(clock.today()))
    pins, filter_file = tmp_path / "pins.json", tmp_path / "org-b.filter"
    warm = sdk_for(network.b_hr, pin_file=pins, filter_file=filter_file)
    await warm.check_applicant(FEW, await consent(warm))  # keys, policy and the filter kept
    assert filter_file.exists()

    recording = Recording(httpx.ASGITransport(app=app))
    hr = sdk_for(network.b_hr, pin_file=pins, filter_file=filter_file, transport=recording)
    result = await hr.check_applicant(MANY, await consent(warm, applicant_ref="APP-3"))
    assert result.status is CheckStatus.NO_MATCH
    assert recording.seen() == [KEYS, TOKEN, STH, CHECK]
    assert_only_the_check(recording.requests, ctx.policy.keys_per_check)


async def test_check_many_shares_one_filter_between_its_checks(
    app: FastAPI, sdk_for: SdkFactory, network: Network, clock: Any
) -> None:
    await sdk_for(network.a_focal).register_case(REGISTERED, case_fields(clock.today()))
    recording = Recording(httpx.ASGITransport(app=app))
    hr = sdk_for(network.b_hr, transport=recording)
    people = [FEW, MANY, REGISTERED]
    consents = [await consent(hr, applicant_ref=f"APP-M{i}") for i in range(3)]
    results = await hr.check_many(people, consents)
    assert [r.status for r in results][:2] == [CheckStatus.NO_MATCH, CheckStatus.NO_MATCH]
    assert results[2].status is CheckStatus.MATCH
    assert recording.seen().count(FILTER) == 1
    assert recording.seen().count(CHECK) == 3
    assert recording.seen().count(("POST", f"/v1/checks/{results[2].check_id}/entries")) == 1
