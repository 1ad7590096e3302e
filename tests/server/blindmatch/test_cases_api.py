"""`/v1/cases`: sealed registration (exactly `keys_per_check` entries, pads proven, nothing
else stored), refusals (each names its rule), idempotency, atomicity, and the focal point's
own-organisation list, read, re-date and withdraw."""

from __future__ import annotations

import hashlib
from datetime import date, timedelta
from typing import Any

import httpx
import nacl.public
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from protocol.codes import KIND_CODES, PADDING_KIND, STRENGTH_CODES
from protocol.encoding import canonical_json
from protocol.entry import hash_to_group, pad_input, prefix, tag, verify_evaluations
from protocol.errors import VerifyError
from protocol.hazmat.ristretto255 import IDENTITY, scalar_mult
from server.audit.models import AuditEntry
from server.cases.models import Case, IdempotencyRecord, Pseudonym
from server.context import AppContext
from server.registry.models import OrgStatus
from tests.blindflow import DEFAULT_KEYS_PER_CHECK, case_body, metadata
from tests.conftest import MutableClock
from tests.factories import AppClient, Network
from tests.server.blindmatch.conftest import Prepared
from tests.server.blindmatch.stored import open_entries, pad_points, pseudonym

pytestmark = pytest.mark.anyio

KPC = DEFAULT_KEYS_PER_CHECK
SEALED_INVALID = "urn:refcheck:problem:sealed-keys-invalid"


def _count(session: Session, model: type[Any]) -> int:
    session.expire_all()
    return int(session.scalar(select(func.count()).select_from(model)) or 0)


async def _post(client: AppClient, network: Network, body: dict[str, Any], **headers: str) -> Any:
    return await client.post("/v1/cases", headers={**network.a_focal.headers, **headers}, json=body)


def _body(prepared: Prepared, clock: MutableClock, **overrides: Any) -> dict[str, Any]:
    """A registration of REGISTERED; metadata `overrides` are sealed with the keys, as a real
    client binds them (changing metadata after sealing is a refusal of its own)."""
    key_id = overrides.pop("key_id", None)
    body = case_body(prepared.server_key, prepared.keys, today=clock.today(), **overrides)
    if key_id is not None:
        body["key_id"] = key_id
    return body


def _sealed_plaintext(meta: dict[str, Any], slots: list[tuple[bytes, int, int]], n: int) -> bytes:
    """The `sealed_keys` plaintext written out byte by byte from docs/protocol.md
    ("Registration", step 2), so a test can put in what `protocol.sealed_keys` would refuse to
    encode: `SHA-256(RFC 8785 JSON of the metadata) || n || slots of (element || kind ||
    strength)`."""
    out = hashlib.sha256(canonical_json(meta)).digest() + bytes([n])
    for element, kind, strength in slots:
        out += element + bytes([kind, strength])
    return out


def _seal_raw(registration_key: bytes, plaintext: bytes) -> str:
    return nacl.public.SealedBox(nacl.public.PublicKey(registration_key)).encrypt(plaintext).hex()


def _raw_body(
    prepared: Prepared, clock: MutableClock, slots: list[tuple[bytes, int, int]], n: int
) -> dict[str, Any]:
    """A body whose `sealed_keys` hold exactly `slots` (zero slots after them) and count `n`."""
    meta = metadata(today=clock.today())
    full = [*slots, *[(bytes(32), 0, 0)] * (KPC - len(slots))]
    return {
        **meta,
        "key_id": prepared.server_key.key_id,
        "sealed_keys": _seal_raw(
            prepared.server_key.registration_key, _sealed_plaintext(meta, full, n)
        ),
    }


def _real_slots(prepared: Prepared) -> list[tuple[bytes, int, int]]:
    return [
        (hash_to_group(k.value), KIND_CODES[k.kind], STRENGTH_CODES[k.strength])
        for k in prepared.keys
    ]


async def test_registration_stores_exactly_keys_per_check_sealed_entries_and_no_count(
    client: AppClient,
    network: Network,
    prepared: Prepared,
    clock: MutableClock,
    session: Session,
    ctx: AppContext,
) -> None:
    assert ctx.policy.keys_per_check == KPC
    n = len(prepared.keys)
    assert 0 < n < KPC, "REGISTERED has fewer keys than a case has entries: some are pads"
    response = await _post(client, network, _body(prepared, clock))
    assert response.status_code == 201, response.text
    answer = response.json()
    case = answer["case"]
    assert case["org_id"] == network.org_a.id
    assert case["status"] == "active"
    assert case["withdrawn_at"] is None
    # No count of the person's keys anywhere in the answer's case.
    assert not {k for k in case if "count" in k or "pseudonym" in k}

    opened = open_entries(session, ctx.keys, case["id"])
    assert len(opened) == KPC
    by_tag = {bytes(e.row.tag): e for e in opened}
    assert len(by_tag) == KPC
    for entry in opened:
        assert bytes(entry.row.p_hat) == scalar_mult(ctx.keys.oprf_wrap, entry.p)
        assert entry.row.key_seq == ctx.keys.oprf_key_seq
        assert (entry.handle.entry_id, entry.handle.case_id) == (entry.row.id, case["id"])
        assert (entry.handle.holder_org_id, entry.handle.holder_org_name) == (
            network.org_a.id,
            "org-a",
        )
    # Each real key is there under its P, with its kind and strength sealed inside...
    for key in prepared.keys:
        real = by_tag.pop(tag(pseudonym(ctx.keys, key)))
        assert (real.handle.kind, real.handle.strength) == (key.kind, key.strength.value)
    # ...and every other entry is the verifiable pad of its slot.
    pads = {tag(p) for p in pad_points(ctx.keys, case["id"], range(n, KPC))}
    assert set(by_tag) == pads
    assert {e.handle.kind for e in by_tag.values()} == {PADDING_KIND}

    # The answer: the case's own filter values, exactly one per entry, and the pads proven.
    values = answer["filter_values"]
    assert values["case_id"] == case["id"]
    assert (values["key_id"], values["key_seq"]) == (ctx.keys.oprf_key_id, ctx.keys.oprf_key_seq)
    assert values["filter_values"] == sorted(prefix(e.p) for e in opened)
    assert [p["index"] for p in values["pads"]] == list(range(n, KPC))
    assert [bytes.fromhex(p["point"]) for p in values["pads"]] == pad_points(
        ctx.keys, case["id"], range(n, KPC)
    )

    audit = session.scalars(select(AuditEntry).where(AuditEntry.action == "case.register")).one()
    assert audit.object_id == case["id"]
    # What a witness needs to count live cases, and no count of the person's keys.
    assert audit.details == {"retention_until": case["retention_until"]}


async def test_the_pads_proof_verifies_against_the_announced_key_and_a_planted_pad_does_not(
    client: AppClient, network: Network, prepared: Prepared, clock: MutableClock, ctx: AppContext
) -> None:
    response = await _post(client, network, _body(prepared, clock))
    assert response.status_code == 201, response.text
    values = response.json()["filter_values"]
    inputs = [pad_input(values["case_id"], p["index"]) for p in values["pads"]]
    points = [bytes.fromhex(p["point"]) for p in values["pads"]]
    proof = bytes.fromhex(values["pad_proof"])
    verify_evaluations(prepared.server_key.public_key, inputs, points, proof)
    # A pad that is someone's real P (to catch their checks) cannot be proven.
    planted = pseudonym(ctx.keys, prepared.keys[0])
    with pytest.raises(VerifyError):
        verify_evaluations(prepared.server_key.public_key, inputs, [planted, *points[1:]], proof)


@pytest.mark.parametrize(
    ("overrides", "rule"),
    [
        ({"legal_basis": "vital_interests"}, "legal_basis"),
        ({"legal_basis": "gossip"}, "legal_basis"),
        ({"category": "fraud"}, "category"),
        ({"finding": "under_investigation"}, "finding"),
        ({"finding": "alleged"}, "finding"),
        ({"sanction": "warning"}, "sanction"),
    ],
)
async def test_registration_outside_policy_is_refused_naming_the_rule(
    client: AppClient,
    network: Network,
    prepared: Prepared,
    clock: MutableClock,
    session: Session,
    overrides: dict[str, Any],
    rule: str,
) -> None:
    response = await _post(client, network, _body(prepared, clock, **overrides))
    assert response.status_code == 422
    assert response.json()["type"] == "urn:refcheck:problem:policy-violation"
    assert response.json()["rule"] == rule
    assert _count(session, Case) == 0


async def test_under_investigation_is_accepted_only_when_policy_allows_it(
    client: AppClient, network: Network, prepared: Prepared, clock: MutableClock, ctx: AppContext
) -> None:
    ctx.policy = ctx.policy.model_copy(update={"allow_under_investigation": True})
    response = await _post(client, network, _body(prepared, clock, finding="under_investigation"))
    assert response.status_code == 201, response.text
    assert response.json()["case"]["finding"] == "under_investigation"


async def test_retention_beyond_the_category_maximum_is_refused(
    client: AppClient, network: Network, prepared: Prepared, clock: MutableClock, ctx: AppContext
) -> None:
    finding = clock.today() - timedelta(days=30)
    years = ctx.policy.categories["sexual_harassment"].max_retention_years  # type: ignore[index]
    limit = finding.replace(year=finding.year + years)
    fields = {
        "category": "sexual_harassment",
        "finding_date": finding.isoformat(),
        "subject_notified_on": finding.isoformat(),
    }
    too_long = _body(
        prepared, clock, **fields, retention_until=(limit + timedelta(days=1)).isoformat()
    )
    response = await _post(client, network, too_long)
    assert response.status_code == 422
    assert response.json()["rule"] == "retention"
    assert response.json()["max_retention_until"] == limit.isoformat()

    # The limit itself is allowed, and a child victim allows longer.
    at_limit = _body(prepared, clock, **fields, retention_until=limit.isoformat())
    response = await _post(client, network, at_limit)
    assert response.status_code == 201, response.text
    child = _body(
        prepared,
        clock,
        **fields,
        child_victim=True,
        retention_until=(limit + timedelta(days=1)).isoformat(),
    )
    response = await _post(client, network, child)
    assert response.status_code == 201, response.text


async def test_retention_in_the_past_is_refused(
    client: AppClient, network: Network, prepared: Prepared, clock: MutableClock
) -> None:
    yesterday = (clock.today() - timedelta(days=1)).isoformat()
    response = await _post(client, network, _body(prepared, clock, retention_until=yesterday))
    assert response.status_code == 422
    assert response.json()["rule"] == "retention"


@pytest.mark.parametrize("field", ["finding_date", "subject_notified_on"])
async def test_dates_in_the_future_are_refused(
    client: AppClient, network: Network, prepared: Prepared, clock: MutableClock, field: str
) -> None:
    tomorrow = (clock.today() + timedelta(days=1)).isoformat()
    response = await _post(client, network, _body(prepared, clock, **{field: tomorrow}))
    assert response.status_code == 422
    assert response.json()["type"] == "urn:refcheck:problem:invalid-request"


async def test_subject_notified_before_the_finding_is_refused(
    client: AppClient, network: Network, prepared: Prepared, clock: MutableClock
) -> None:
    finding = date.fromisoformat(_body(prepared, clock)["finding_date"])
    early = (finding - timedelta(days=1)).isoformat()
    response = await _post(client, network, _body(prepared, clock, subject_notified_on=early))
    assert response.status_code == 422
    assert response.json()["type"] == "urn:refcheck:problem:invalid-request"


async def _refused_and_nothing_stored(
    client: AppClient, network: Network, session: Session, body: dict[str, Any]
) -> None:
    response = await _post(client, network, body)
    assert response.status_code == 422, response.text
    assert response.json()["type"] == SEALED_INVALID
    assert _count(session, Case) == 0
    assert _count(session, Pseudonym) == 0


async def test_the_control_raw_sealed_keys_of_the_real_slots_register(
    client: AppClient, network: Network, prepared: Prepared, clock: MutableClock
) -> None:
    """The byte-by-byte layout the refusals below tamper with is the one the server reads."""
    slots = _real_slots(prepared)
    response = await _post(client, network, _raw_body(prepared, clock, slots, len(slots)))
    assert response.status_code == 201, response.text


async def test_keys_sealed_for_other_metadata_are_refused(
    client: AppClient, network: Network, prepared: Prepared, clock: MutableClock, session: Session
) -> None:
    """Someone's sealed keys replayed under other findings would register that person with
    findings the sealer never stated."""
    body = _body(prepared, clock)
    await _refused_and_nothing_stored(
        client, network, session, {**body, "sanction": "contract_termination"}
    )


async def test_keys_sealed_to_another_registration_key_are_refused(
    client: AppClient, network: Network, prepared: Prepared, clock: MutableClock, session: Session
) -> None:
    meta = metadata(today=clock.today())
    slots = _real_slots(prepared)
    full = [*slots, *[(bytes(32), 0, 0)] * (KPC - len(slots))]
    stranger = bytes(nacl.public.PrivateKey.generate().public_key)
    body = {
        **meta,
        "key_id": prepared.server_key.key_id,
        "sealed_keys": _seal_raw(stranger, _sealed_plaintext(meta, full, len(slots))),
    }
    await _refused_and_nothing_stored(client, network, session, body)


async def test_bytes_that_are_no_sealed_box_are_refused(
    client: AppClient, network: Network, prepared: Prepared, clock: MutableClock, session: Session
) -> None:
    body = _body(prepared, clock)
    garbage = hashlib.sha256(b"x").hexdigest() * (len(body["sealed_keys"]) // 64)
    await _refused_and_nothing_stored(client, network, session, {**body, "sealed_keys": garbage})


async def test_keys_sealed_for_another_keys_per_check_are_refused(
    client: AppClient, network: Network, prepared: Prepared, clock: MutableClock, session: Session
) -> None:
    body = case_body(
        prepared.server_key, prepared.keys[:8], today=clock.today(), keys_per_check=KPC // 2
    )
    await _refused_and_nothing_stored(client, network, session, body)


@pytest.mark.parametrize(
    "what",
    [
        "identity",
        "repeat",
        "non-canonical",
        "unknown kind",
        "unknown strength",
        "count above keys_per_check",
        "count zero",
        "unused slot not zero",
    ],
)
async def test_a_bad_slot_is_refused_and_nothing_is_stored(
    client: AppClient,
    network: Network,
    prepared: Prepared,
    clock: MutableClock,
    session: Session,
    what: str,
) -> None:
    slots = _real_slots(prepared)
    n = len(slots)
    last = n - 1
    element, kind, strength = slots[last]
    if what == "identity":
        slots[last] = (IDENTITY, kind, strength)
    elif what == "repeat":
        # A repeat would store one key twice: its tag twice in one case.
        slots[last] = (slots[0][0], kind, strength)
    elif what == "non-canonical":
        slots[last] = (element[:31] + bytes([element[31] | 0x80]), kind, strength)
    elif what == "unknown kind":
        slots[last] = (element, 0xEE, strength)
    elif what == "unknown strength":
        slots[last] = (element, kind, 0xEE)
    elif what == "count above keys_per_check":
        n = KPC + 1
    elif what == "count zero":
        n = 0
    else:
        # A key hidden after the count: one registration has one encoding.
        n = last
    await _refused_and_nothing_stored(
        client, network, session, _raw_body(prepared, clock, slots, n)
    )


async def test_stale_key_id_is_refused(
    client: AppClient, network: Network, prepared: Prepared, clock: MutableClock
) -> None:
    response = await _post(client, network, _body(prepared, clock, key_id="0" * 16))
    assert response.status_code == 409
    assert response.json()["type"] == "urn:refcheck:problem:key-mismatch"


@pytest.mark.parametrize(
    "change",
    [
        {"status": OrgStatus.SUSPENDED},
        {"may_register": False},
        {"data_sharing_agreement": False},
    ],
)
async def test_registration_without_an_active_mou_is_refused(
    client: AppClient,
    network: Network,
    prepared: Prepared,
    clock: MutableClock,
    session: Session,
    change: dict[str, Any],
) -> None:
    for name, value in change.items():
        setattr(network.org_a, name, value)
    session.commit()
    response = await _post(client, network, _body(prepared, clock))
    assert response.status_code == 403
    assert response.json()["type"] == "urn:refcheck:problem:mou-inactive"


async def test_expired_mou_is_refused(
    client: AppClient, network: Network, prepared: Prepared, clock: MutableClock, session: Session
) -> None:
    network.org_a.mou_expires_on = clock.today() - timedelta(days=1)
    session.commit()
    response = await _post(client, network, _body(prepared, clock))
    assert response.status_code == 403
    assert response.json()["type"] == "urn:refcheck:problem:mou-inactive"


async def test_hr_checker_cannot_register(
    client: AppClient, network: Network, prepared: Prepared, clock: MutableClock
) -> None:
    response = await client.post(
        "/v1/cases", headers=network.a_hr.headers, json=_body(prepared, clock)
    )
    assert response.status_code == 403
    assert response.json()["type"] == "urn:refcheck:problem:permission-denied"


async def test_idempotency_key_makes_a_retry_land_once(
    client: AppClient, network: Network, prepared: Prepared, clock: MutableClock, session: Session
) -> None:
    body = _body(prepared, clock)
    first = await _post(client, network, body, **{"Idempotency-Key": "reg-7f3a"})
    second = await _post(client, network, body, **{"Idempotency-Key": "reg-7f3a"})
    assert first.status_code == second.status_code == 201
    assert first.json()["case"] == second.json()["case"]
    # The retry is answered with the same filter values and pads (the pads' proof is made
    # afresh, with a new nonce).
    again, before = second.json()["filter_values"], first.json()["filter_values"]
    assert {k: v for k, v in again.items() if k != "pad_proof"} == {
        k: v for k, v in before.items() if k != "pad_proof"
    }
    assert _count(session, Case) == 1
    assert _count(session, Pseudonym) == KPC
    assert _count(session, IdempotencyRecord) == 1
    # Both answers name the case's one `case.register` log entry.
    log_seq = first.json()["log_seq"]
    assert second.json()["log_seq"] == log_seq
    entry = session.get(AuditEntry, log_seq)
    assert entry is not None
    assert (entry.action, entry.object_id) == ("case.register", first.json()["case"]["id"])


async def test_idempotency_key_reused_with_another_body_is_refused(
    client: AppClient, network: Network, prepared: Prepared, clock: MutableClock, session: Session
) -> None:
    first = await _post(client, network, _body(prepared, clock), **{"Idempotency-Key": "k1"})
    assert first.status_code == 201
    other = _body(prepared, clock, sanction="contract_termination")
    second = await _post(client, network, other, **{"Idempotency-Key": "k1"})
    assert second.status_code == 409
    assert second.json()["type"] == "urn:refcheck:problem:idempotency-conflict"
    assert _count(session, Case) == 1


async def test_idempotency_keys_are_per_organisation(
    client: AppClient, network: Network, prepared: Prepared, clock: MutableClock, session: Session
) -> None:
    body = _body(prepared, clock)
    a = await _post(client, network, body, **{"Idempotency-Key": "shared"})
    b = await client.post(
        "/v1/cases", headers={**network.b_focal.headers, "Idempotency-Key": "shared"}, json=body
    )
    assert a.status_code == b.status_code == 201
    assert a.json()["case"]["id"] != b.json()["case"]["id"]


async def test_failure_after_rows_were_written_stores_nothing(
    client: AppClient,
    network: Network,
    prepared: Prepared,
    clock: MutableClock,
    session: Session,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A crash between writing the entries and committing (here: the statistics counter
    failing) must leave no case, no entry and no audit entry behind."""
    import server.cases.services as services

    def broken(*_args: Any, **_kwargs: Any) -> None:
        raise RuntimeError("simulated failure")

    monkeypatch.setattr(services, "increment_many", broken)
    # A client that gets the 500 answer instead of the re-raised exception.
    transport = httpx.ASGITransport(app=client.app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as raw:
        response = await raw.post(
            "/v1/cases",
            headers={**network.a_focal.headers, "Idempotency-Key": "x"},
            json=_body(prepared, clock),
        )
    assert response.status_code == 500
    assert _count(session, Case) == 0
    assert _count(session, Pseudonym) == 0
    assert _count(session, IdempotencyRecord) == 0
    assert (
        session.scalars(select(AuditEntry).where(AuditEntry.action == "case.register")).all() == []
    )


async def test_cases_are_listed_and_read_by_their_own_organisation_only(
    client: AppClient, network: Network, prepared: Prepared, clock: MutableClock
) -> None:
    created = (await _post(client, network, _body(prepared, clock))).json()["case"]
    listed = await client.get("/v1/cases", headers=network.a_focal.headers)
    assert [c["id"] for c in listed.json()["items"]] == [created["id"]]
    read = await client.get(f"/v1/cases/{created['id']}", headers=network.a_focal.headers)
    assert read.json() == created

    foreign = await client.get(f"/v1/cases/{created['id']}", headers=network.b_focal.headers)
    assert foreign.status_code == 404
    assert foreign.json()["type"] == "urn:refcheck:problem:not-found"
    assert (await client.get("/v1/cases", headers=network.b_focal.headers)).json()["items"] == []
    for path, body in ((f"/v1/cases/{created['id']}/withdraw", {"reason": "other"}),):
        response = await client.post(path, headers=network.b_focal.headers, json=body)
        assert response.status_code == 404
    response = await client.patch(
        f"/v1/cases/{created['id']}",
        headers=network.b_focal.headers,
        json={"retention_until": clock.today().isoformat()},
    )
    assert response.status_code == 404


async def test_withdrawal_deletes_the_entries_and_is_repeatable(
    client: AppClient, network: Network, prepared: Prepared, clock: MutableClock, session: Session
) -> None:
    created = (await _post(client, network, _body(prepared, clock))).json()["case"]
    path = f"/v1/cases/{created['id']}/withdraw"
    first = await client.post(
        path, headers=network.a_focal.headers, json={"reason": "appeal_upheld", "note": "ref 12"}
    )
    assert first.status_code == 200
    withdrawn = first.json()
    assert withdrawn["status"] == "withdrawn"
    assert withdrawn["withdrawal_reason"] == "appeal_upheld"
    assert withdrawn["withdrawal_note"] == "ref 12"
    assert _count(session, Pseudonym) == 0

    again = await client.post(path, headers=network.a_focal.headers, json={"reason": "other"})
    assert again.status_code == 200
    assert again.json() == withdrawn

    listed = await client.get("/v1/cases?status=withdrawn", headers=network.a_focal.headers)
    assert [c["id"] for c in listed.json()["items"]] == [created["id"]]
    active = await client.get("/v1/cases?status=active", headers=network.a_focal.headers)
    assert active.json()["items"] == []


async def test_withdrawal_needs_a_known_reason(
    client: AppClient, network: Network, prepared: Prepared, clock: MutableClock
) -> None:
    created = (await _post(client, network, _body(prepared, clock))).json()["case"]
    response = await client.post(
        f"/v1/cases/{created['id']}/withdraw",
        headers=network.a_focal.headers,
        json={"reason": "changed_our_mind"},
    )
    assert response.status_code == 422


async def test_withdrawal_is_allowed_even_when_the_mou_has_lapsed(
    client: AppClient, network: Network, prepared: Prepared, clock: MutableClock, session: Session
) -> None:
    created = (await _post(client, network, _body(prepared, clock))).json()["case"]
    network.org_a.status = OrgStatus.SUSPENDED
    session.commit()
    response = await client.post(
        f"/v1/cases/{created['id']}/withdraw",
        headers=network.a_focal.headers,
        json={"reason": "rectification"},
    )
    assert response.status_code == 200


async def test_retention_can_be_shortened_and_lengthened_only_within_policy(
    client: AppClient, network: Network, prepared: Prepared, clock: MutableClock, ctx: AppContext
) -> None:
    created = (await _post(client, network, _body(prepared, clock))).json()["case"]
    path = f"/v1/cases/{created['id']}"
    shorter = (clock.today() + timedelta(days=10)).isoformat()
    response = await client.patch(
        path, headers=network.a_focal.headers, json={"retention_until": shorter}
    )
    assert response.status_code == 200
    assert response.json()["retention_until"] == shorter

    finding = date.fromisoformat(created["finding_date"])
    years = ctx.policy.categories["sexual_abuse"].max_retention_years  # type: ignore[index]
    limit = finding.replace(year=finding.year + years)
    response = await client.patch(
        path, headers=network.a_focal.headers, json={"retention_until": limit.isoformat()}
    )
    assert response.status_code == 200
    response = await client.patch(
        path,
        headers=network.a_focal.headers,
        json={"retention_until": (limit + timedelta(days=1)).isoformat()},
    )
    assert response.status_code == 422
    assert response.json()["rule"] == "retention"
    past = (clock.today() - timedelta(days=1)).isoformat()
    response = await client.patch(
        path, headers=network.a_focal.headers, json={"retention_until": past}
    )
    assert response.status_code == 422
    assert response.json()["rule"] == "retention"


async def test_lengthening_retention_needs_the_mou_but_shortening_does_not(
    client: AppClient, network: Network, prepared: Prepared, clock: MutableClock, session: Session
) -> None:
    created = (await _post(client, network, _body(prepared, clock))).json()["case"]
    network.org_a.may_register = False
    session.commit()
    path = f"/v1/cases/{created['id']}"
    current = date.fromisoformat(created["retention_until"])
    longer = await client.patch(
        path,
        headers=network.a_focal.headers,
        json={"retention_until": (current + timedelta(days=1)).isoformat()},
    )
    assert longer.status_code == 403
    shorter = await client.patch(
        path,
        headers=network.a_focal.headers,
        json={"retention_until": (current - timedelta(days=1)).isoformat()},
    )
    assert shorter.status_code == 200


async def test_unknown_fields_are_refused(
    client: AppClient, network: Network, prepared: Prepared, clock: MutableClock
) -> None:
    response = await _post(client, network, {**_body(prepared, clock), "subject_name": "x"})
    assert response.status_code == 422
    assert response.json()["type"] == "urn:refcheck:problem:invalid-request"


async def test_filter_values_are_reissued_to_the_holder_as_registration_answered_them(
    client: AppClient, network: Network, prepared: Prepared, clock: MutableClock
) -> None:
    registered = (await _post(client, network, _body(prepared, clock))).json()
    case_id = registered["case"]["id"]
    response = await client.get(
        f"/v1/cases/{case_id}/filter-values", headers=network.a_focal.headers
    )
    assert response.status_code == 200, response.text
    again = response.json()
    before = registered["filter_values"]
    assert {k: v for k, v in again.items() if k != "pad_proof"} == {
        k: v for k, v in before.items() if k != "pad_proof"
    }
    inputs = [pad_input(case_id, p["index"]) for p in again["pads"]]
    points = [bytes.fromhex(p["point"]) for p in again["pads"]]
    verify_evaluations(
        prepared.server_key.public_key, inputs, points, bytes.fromhex(again["pad_proof"])
    )
    foreign = await client.get(
        f"/v1/cases/{case_id}/filter-values", headers=network.b_focal.headers
    )
    assert foreign.status_code == 404


async def test_a_withdrawn_case_has_no_filter_values(
    client: AppClient, network: Network, prepared: Prepared, clock: MutableClock
) -> None:
    created = (await _post(client, network, _body(prepared, clock))).json()["case"]
    withdrawn = await client.post(
        f"/v1/cases/{created['id']}/withdraw",
        headers=network.a_focal.headers,
        json={"reason": "registered_in_error"},
    )
    assert withdrawn.status_code == 200
    response = await client.get(
        f"/v1/cases/{created['id']}/filter-values", headers=network.a_focal.headers
    )
    assert response.status_code == 404, response.text
