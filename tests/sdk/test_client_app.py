"""The SDK against the real FastAPI app (httpx.ASGITransport): the whole register → consent →
check → entries → match path (protocol v2), and what the SDK does when the network or the
server misbehaves. The lying server's filters and pads are in test_lying_server.py, what a
curious server sees in test_curious_server.py."""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from client_sdk import (
    AsyncClient,
    CaseRegistration,
    CheckResult,
    CheckStatus,
    ConsentExpired,
    ConsentWithdrawn,
    CredentialsError,
    InvalidClient,
    InvalidInput,
    InvalidPerson,
    InvalidToken,
    KeyChanged,
    KeyMismatch,
    NotFound,
    PermissionDenied,
    ProofInvalid,
    Registration,
    RetryPolicy,
    ServiceUnavailable,
    WrongElementCount,
)
from tests.factories import Network
from tests.sdk.conftest import (
    FAST_RETRY,
    Counting,
    FailFirst,
    SdkFactory,
    Tamper,
    credentials_for,
    flip_bit,
    sdk_clock,
)
from tests.server.blindmatch.people import OTHER, REGISTERED, SPELLING_VARIANTS

pytestmark = pytest.mark.anyio

FORM = "ab" * 32


def case_fields(today: Any) -> CaseRegistration:
    return CaseRegistration(
        category="sexual_abuse",
        finding_date=today - timedelta(days=60),
        sanction="dismissal",
        legal_basis="legitimate_interests",
        retention_until=(today + timedelta(days=5 * 365)).isoformat(),
        mou_reference="MoU-2026-01",
        subject_notified_on=(today - timedelta(days=50)).isoformat(),
    )


async def consent(sdk: Any, **overrides: Any) -> str:
    fields: dict[str, Any] = {
        "applicant_ref": "APP-1",
        "purpose": "recruitment",
        "position_ref": "POS-1",
        "form_sha256": FORM,
        "self_declared_finding": False,
    }
    fields.update(overrides)
    consent_id: str = await sdk.record_consent(**fields)
    return consent_id


async def test_registered_person_is_found_under_another_spelling(
    sdk_for: SdkFactory, network: Network, clock: Any
) -> None:
    focal, hr = sdk_for(network.a_focal), sdk_for(network.b_hr)
    registration = await focal.register_case(REGISTERED, case_fields(clock.today()))
    assert isinstance(registration, Registration)
    case_id = registration.case_id

    consent_id = await consent(hr)
    result = await hr.check_applicant(SPELLING_VARIANTS[3], consent_id)

    assert result.status is CheckStatus.MATCH
    assert result.holder_orgs == ("org-a",)
    assert {m.case_id for m in result.matches} == {case_id}
    strong = [m for m in result.matches if m.strength == "strong"]
    assert strong and strong[0].kind == "national_id"
    # Many records of one case matched; by_case gives the case once, by its strongest key.
    (best,) = result.by_case()
    assert best.case_id == case_id and best.strength == "strong"
    assert all(m.holder_org_id == network.org_a.id and m.entry_id for m in result.matches)
    # What a disclosure request names: this check and an entry it claimed.
    assert all(m.check_id == result.check_id and m.consent_id == consent_id for m in result.matches)
    assert len({m.entry_id for m in result.matches}) == len(result.matches)


async def test_name_only_variant_is_a_possible_match_for_a_human_to_confirm(
    sdk_for: SdkFactory, network: Network, clock: Any
) -> None:
    focal, hr = sdk_for(network.a_focal), sdk_for(network.b_hr)
    await focal.register_case(REGISTERED, case_fields(clock.today()))
    results = await hr.check_many(
        SPELLING_VARIANTS[:3], [await consent(hr, applicant_ref=f"A{i}") for i in range(3)]
    )
    assert all(r.matches for r in results)
    for r in results:
        only_variant = all(m.strength == "variant" for m in r.matches)
        assert r.status is (CheckStatus.POSSIBLE_MATCH if only_variant else CheckStatus.MATCH)
    assert any(r.status is CheckStatus.POSSIBLE_MATCH for r in results)


async def test_a_different_person_is_no_match(
    sdk_for: SdkFactory, network: Network, clock: Any
) -> None:
    await sdk_for(network.a_focal).register_case(REGISTERED, case_fields(clock.today()))
    hr = sdk_for(network.b_hr)
    result = await hr.check_applicant(OTHER, await consent(hr))
    assert result.status is CheckStatus.NO_MATCH and result.matches == ()
    assert result.keys_checked > 0


async def test_withdrawn_case_no_longer_matches(
    sdk_for: SdkFactory, network: Network, clock: Any
) -> None:
    focal, hr = sdk_for(network.a_focal), sdk_for(network.b_hr)
    case_id = (await focal.register_case(REGISTERED, case_fields(clock.today()))).case_id
    withdrawn = await focal.withdraw_case(case_id, "appeal_upheld")
    assert withdrawn.status == "withdrawn"
    assert [c.id for c in await focal.list_cases("withdrawn")] == [case_id]
    result = await hr.check_applicant(REGISTERED, await consent(hr))
    assert result.status is CheckStatus.NO_MATCH


async def test_list_cases_follows_every_page(
    sdk_for: SdkFactory, network: Network, clock: Any
) -> None:
    focal = sdk_for(network.a_focal)
    # Small pages make the server page five cases three times; the SDK must follow them all.
    focal._core.case_page_size = 2
    registered = {
        (
            await focal.register_case(
                {"full_name": "Budi Santoso", "date_of_birth": f"1980-01-0{day}"},
                case_fields(clock.today()),
            )
        ).case_id
        for day in range(1, 6)
    }
    assert {c.id for c in await focal.list_cases()} == registered
    assert {c.id for c in await focal.list_cases("active")} == registered


async def test_tampered_check_proof_is_detected(
    app: FastAPI, sdk_for: SdkFactory, network: Network, clock: Any
) -> None:
    await sdk_for(network.a_focal).register_case(REGISTERED, case_fields(clock.today()))

    def edit(body: dict[str, Any]) -> None:
        body["proof"] = flip_bit(body["proof"], bit=77)

    tamper = Tamper(httpx.ASGITransport(app=app), path="/v1/checks", edit=edit)
    hr = sdk_for(network.b_hr, transport=tamper)
    with pytest.raises(ProofInvalid):
        await hr.check_applicant(REGISTERED, await consent(hr))
    # Refused, not retried: a server caught misbehaving is not asked again.
    assert tamper.calls[("POST", "/v1/checks")] == 1


class Headers(Counting):
    """Counting, and keeps each request's `Authorization` header (None when absent)."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        super().__init__(inner)
        self.authorizations: list[str | None] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.authorizations.append(request.headers.get("Authorization"))
        return await super().handle_async_request(request)


@pytest.mark.parametrize("operation", ["check", "me"])
async def test_a_credentials_file_naming_another_signing_key_stops_before_anything_else(
    app: FastAPI, network: Network, clock: Any, operation: str
) -> None:
    """Whatever the first call, the server's signing key is compared before a token assertion
    is signed for it: an impostor receives one unauthenticated `GET /v1/network/keys`."""
    counting = Headers(httpx.ASGITransport(app=app))
    creds = dataclasses.replace(
        credentials_for(network.b_hr, network, server_keys=app.state.ctx.keys),
        network_signing_key_sha256="ab" * 32,
    )
    async with AsyncClient(
        creds, transport=counting, retry=FAST_RETRY, clock=sdk_clock(clock)
    ) as hr:
        with pytest.raises(KeyChanged, match="credentials file") as info:
            if operation == "check":
                await hr.check_applicant(OTHER, "00000000-0000-4000-8000-000000000000")
            else:
                await hr.me()
    assert info.value.pinned_key_id == "ab" * 32
    assert set(counting.calls) == {("GET", "/v1/network/keys")}
    assert counting.authorizations == [None]


async def test_with_the_right_fingerprint_the_keys_are_read_once_before_the_token(
    app: FastAPI, network: Network, clock: Any
) -> None:
    """The other side of the test above: the same client with the true fingerprint signs in
    after the keys call, and a check reads the keys no second time."""
    counting = Headers(httpx.ASGITransport(app=app))
    creds = credentials_for(network.b_hr, network, server_keys=app.state.ctx.keys)
    async with AsyncClient(
        creds, transport=counting, retry=FAST_RETRY, clock=sdk_clock(clock)
    ) as hr:
        await hr.me()
        await hr.check_applicant(OTHER, await consent(hr))
    assert counting.calls[("GET", "/v1/network/keys")] == 1
    assert counting.authorizations[0] is None
    assert all(h and h.startswith("Bearer ") for h in counting.authorizations[2:])


async def test_the_signing_key_and_announcements_are_pinned_from_the_credentials(
    sdk_for: SdkFactory, network: Network, ctx: Any
) -> None:
    hr = sdk_for(network.b_hr)
    assert hr.network is None
    key = await hr.oprf_key()
    assert hr.network is not None and hr.network.current == key
    assert hr.network.fingerprint == ctx.keys.signing_key_sha256
    assert key.public_key == ctx.keys.oprf_public and key.key_seq >= 1
    assert hr.network.keys_per_check == ctx.policy.keys_per_check


@pytest.mark.parametrize(
    "missing", [{"network_signing_key_sha256": None}, {"network_id": None}, {"network_id": ""}]
)
async def test_credentials_naming_no_network_key_are_refused_before_any_request(
    app: FastAPI, network: Network, clock: Any, missing: dict[str, Any]
) -> None:
    """No trust on first use: without the secretariat's fingerprint nothing is sent at all."""
    counting = Counting(httpx.ASGITransport(app=app))
    creds = dataclasses.replace(
        credentials_for(network.b_hr, network, server_keys=app.state.ctx.keys), **missing
    )
    with pytest.raises(CredentialsError, match="--network-fingerprint"):
        AsyncClient(creds, transport=counting, retry=FAST_RETRY, clock=sdk_clock(clock))
    assert not counting.calls


async def test_503_is_retried_then_succeeds(
    app: FastAPI, sdk_for: SdkFactory, network: Network
) -> None:
    flaky = FailFirst(httpx.ASGITransport(app=app), path="/v1/checks", status=503, times=2)
    hr = sdk_for(network.b_hr, transport=flaky)
    result = await hr.check_applicant(OTHER, await consent(hr))
    assert isinstance(result, CheckResult)
    assert flaky.calls[("POST", "/v1/checks")] == 3


async def test_503_that_persists_surfaces_after_the_allowed_attempts(
    app: FastAPI, sdk_for: SdkFactory, network: Network
) -> None:
    down = FailFirst(httpx.ASGITransport(app=app), path="/v1/checks", status=503, times=99)
    hr = sdk_for(network.b_hr, transport=down, retry=RetryPolicy(max_attempts=3, backoff_factor=0))
    with pytest.raises(ServiceUnavailable):
        await hr.check_applicant(OTHER, await consent(hr))
    assert down.calls[("POST", "/v1/checks")] == 3


async def test_429_retry_after_is_honoured(
    app: FastAPI, sdk_for: SdkFactory, network: Network
) -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    limited = FailFirst(
        httpx.ASGITransport(app=app),
        path="/v1/checks",
        status=429,
        times=1,
        headers={"Retry-After": "7"},
        slug="quota-exceeded",
    )
    hr = sdk_for(network.b_hr, transport=limited, sleep=sleep)
    await hr.check_applicant(OTHER, await consent(hr))
    assert waits == [7.0]


async def test_refusal_is_not_retried(app: FastAPI, sdk_for: SdkFactory, network: Network) -> None:
    counting = Counting(httpx.ASGITransport(app=app))
    hr = sdk_for(network.b_hr, transport=counting)
    consent_id = await consent(hr)
    await hr.withdraw_consent(consent_id)
    with pytest.raises(ConsentWithdrawn):
        await hr.check_applicant(OTHER, consent_id)
    assert counting.calls[("POST", "/v1/checks")] == 1


async def test_expired_consent_is_refused(
    sdk_for: SdkFactory, network: Network, clock: Any
) -> None:
    hr = sdk_for(network.b_hr)
    consent_id = await consent(hr, expires_on=clock.today() + timedelta(days=1))
    clock.advance(days=3)
    with pytest.raises(ConsentExpired):
        await hr.check_applicant(OTHER, consent_id)


async def test_connection_failure_is_retried(
    app: FastAPI, sdk_for: SdkFactory, network: Network
) -> None:
    class RefuseFirst(Counting):
        refused = 0

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            if request.url.path == "/v1/me" and self.refused < 2:
                self.refused += 1
                raise httpx.ConnectError("connection refused", request=request)
            return await super().handle_async_request(request)

    hr = sdk_for(network.b_hr, transport=RefuseFirst(httpx.ASGITransport(app=app)))
    assert (await hr.me())["org_short_name"] == "org-b"


async def test_token_is_cached_and_renewed_before_expiry(
    app: FastAPI, sdk_for: SdkFactory, network: Network, clock: Any
) -> None:
    counting = Counting(httpx.ASGITransport(app=app))
    hr = sdk_for(network.b_hr, transport=counting)
    await hr.me()
    await hr.me()
    assert counting.calls[("POST", "/v1/oauth/token")] == 1
    clock.advance(seconds=app.state.ctx.settings.access_token_ttl_seconds - 5)
    await hr.me()
    assert counting.calls[("POST", "/v1/oauth/token")] == 2


async def test_wrong_auth_key_is_invalid_client(sdk_for: SdkFactory, network: Network) -> None:
    hr = sdk_for(network.b_hr)
    hr.credentials = type(hr.credentials)(
        client_id=hr.credentials.client_id, auth_private_key=b"\x01" * 32
    )
    with pytest.raises(InvalidClient):
        await hr.me()


async def test_role_without_permission_is_refused(sdk_for: SdkFactory, network: Network) -> None:
    with pytest.raises(PermissionDenied):
        await consent(sdk_for(network.a_focal))


async def test_foreign_consent_is_not_found(sdk_for: SdkFactory, network: Network) -> None:
    consent_id = await consent(sdk_for(network.a_hr))
    with pytest.raises(NotFound):
        await sdk_for(network.b_hr).check_applicant(OTHER, consent_id)


async def test_check_many_keeps_going_past_a_refused_row(
    sdk_for: SdkFactory, network: Network, clock: Any
) -> None:
    await sdk_for(network.a_focal).register_case(REGISTERED, case_fields(clock.today()))
    hr = sdk_for(network.b_hr)
    ids = [await consent(hr, applicant_ref=f"S{i}") for i in range(3)]
    await hr.withdraw_consent(ids[1])
    results = await hr.check_many([REGISTERED, OTHER, OTHER], ids, return_exceptions=True)
    assert isinstance(results[0], CheckResult) and results[0].status is CheckStatus.MATCH
    assert isinstance(results[1], ConsentWithdrawn)
    assert isinstance(results[2], CheckResult) and results[2].status is CheckStatus.NO_MATCH
    with pytest.raises(ConsentWithdrawn):
        await hr.check_many([OTHER], [ids[1]])


async def test_bad_input_is_refused_before_anything_is_sent(
    app: FastAPI, sdk_for: SdkFactory, network: Network
) -> None:
    counting = Counting(httpx.ASGITransport(app=app))
    hr = sdk_for(network.b_hr, transport=counting)
    with pytest.raises(InvalidInput):
        await hr.record_consent(
            applicant_ref="Siti Rahmawati",  # a name, not an opaque reference
            purpose="recruitment",
            position_ref="POS-1",
            form_sha256=FORM,
            self_declared_finding=False,
        )
    with pytest.raises(InvalidPerson):
        await hr.check_applicant({"full_name": "X"}, "00000000-0000-4000-8000-000000000000")
    assert counting.calls[("POST", "/v1/consents")] == 0
    assert counting.calls[("POST", "/v1/checks")] == 0


async def test_raw_request_returns_answers_without_raising(
    sdk_for: SdkFactory, network: Network
) -> None:
    hr = sdk_for(network.b_hr)
    me = await hr.request("GET", "/v1/me")
    assert me.status_code == 200 and me.json()["principal_id"] == network.b_hr.id
    refused = await hr.request("GET", "/v1/audit")
    assert refused.status_code == 403


async def test_refused_token_is_renewed_once(
    app: FastAPI, sdk_for: SdkFactory, network: Network
) -> None:
    revoked = FailFirst(
        httpx.ASGITransport(app=app), path="/v1/me", status=401, times=1, slug="invalid-token"
    )
    hr = sdk_for(network.b_hr, transport=revoked)
    assert (await hr.me())["principal_id"] == network.b_hr.id
    assert revoked.calls[("POST", "/v1/oauth/token")] == 2


async def test_token_refused_twice_surfaces(
    app: FastAPI, sdk_for: SdkFactory, network: Network
) -> None:
    revoked = FailFirst(
        httpx.ASGITransport(app=app), path="/v1/me", status=401, times=2, slug="invalid-token"
    )
    with pytest.raises(InvalidToken):
        await sdk_for(network.b_hr, transport=revoked).me()


async def test_key_mismatch_rereads_the_keys_once_and_stops_when_they_did_not_change(
    app: FastAPI, sdk_for: SdkFactory, network: Network
) -> None:
    stale = FailFirst(
        httpx.ASGITransport(app=app),
        path="/v1/checks",
        status=409,
        times=1,
        slug="key-mismatch",
    )
    hr = sdk_for(network.b_hr, transport=stale)
    with pytest.raises(KeyMismatch):
        await hr.check_applicant(OTHER, await consent(hr))
    assert stale.calls[("GET", "/v1/network/keys")] == 2
    assert stale.calls[("POST", "/v1/checks")] == 1


async def test_a_changed_keys_per_check_is_read_again_and_the_check_retried(
    app: FastAPI, sdk_for: SdkFactory, network: Network, ctx: Any, tmp_path: Any
) -> None:
    pins = tmp_path / "pins.json"
    warm = sdk_for(network.b_hr, pin_file=pins)
    await warm.oprf_key()
    # The policy moved on since this pin file was written (or the file says otherwise).
    document = json.loads(pins.read_text())
    (entry,) = document["network"].values()
    entry["keys_per_check"] = ctx.policy.keys_per_check + 3
    pins.write_text(json.dumps(document))
    counting = Counting(httpx.ASGITransport(app=app))
    hr = sdk_for(network.b_hr, pin_file=pins, transport=counting)
    result = await hr.check_applicant(OTHER, await consent(hr))
    assert result.status is CheckStatus.NO_MATCH
    assert counting.calls[("POST", "/v1/checks")] == 2
    assert counting.calls[("GET", "/v1/policy")] == 1
    assert hr.network is not None and hr.network.keys_per_check == ctx.policy.keys_per_check


async def test_a_wrong_count_that_persists_surfaces_after_one_retry(
    app: FastAPI, sdk_for: SdkFactory, network: Network
) -> None:
    wrong = FailFirst(
        httpx.ASGITransport(app=app),
        path="/v1/checks",
        status=422,
        times=9,
        slug="wrong-element-count",
    )
    hr = sdk_for(network.b_hr, transport=wrong)
    with pytest.raises(WrongElementCount):
        await hr.check_applicant(OTHER, await consent(hr))
    assert wrong.calls[("POST", "/v1/checks")] == 1  # keys and policy unchanged: no retry


async def test_the_async_client_has_the_admin_calls_too(
    sdk_for: SdkFactory, network: Network
) -> None:
    admin = sdk_for(network.admin)
    orgs = {o["short_name"]: o["id"] for o in await admin.list_orgs()}
    assert {"org-a", "org-b"} <= set(orgs)
    principals = await admin.list_principals(orgs["org-b"])
    assert network.b_hr.id in {p["id"] for p in principals}
    gone = await admin.deactivate_principal(network.b_hr.id)
    assert gone["id"] == network.b_hr.id
