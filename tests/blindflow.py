"""The client side of the blind-match protocol (version 2), as the server tests drive it over HTTP.

This is the *test* helper: the production client is `client_sdk/`. It runs the real protocol
code (`protocol.identity.derive_keys`, `protocol.oprf.VOPRFClient`, `protocol.entry`,
`protocol.claim`, `protocol.sealed_keys`, `protocol.filter`) so a server test exercises exactly
what a docs/protocol.md client sends, and nothing here reaches into the server's internals.

Registration (focal point)::

    case = await register_person(client, focal.headers, PERSON, today=clock.today())

Check (HR checker)::

    consent = await record_consent(client, hr.headers, now=clock())
    outcome = await check_person(client, hr.headers, consent["id"], PERSON_VARIANT)
    assert outcome.holder_org_ids == {org_a.id}

The lower-level steps (`fetch_key`, `blind_keys`, `build_check_request`, `unblind_verified`,
`fetch_filter`, `claim_hits`, `sealed_keys_for`) are public too, for tests that tamper with one
step.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import httpx
import nacl.public

from protocol import consent_details, sealed_keys, signed
from protocol import filter as rcfilter
from protocol.claim import prove_claim
from protocol.entry import Handle, hash_to_group, open_handle, prefix, tag
from protocol.identity import Key, derive_keys
from protocol.oprf import VOPRFClient, unblind

#: The shipped policy's count of elements per check and entries per case.
DEFAULT_KEYS_PER_CHECK = 32

Person = Mapping[str, object]


@dataclass(frozen=True)
class ServerKey:
    """The current OPRF key as `GET /v1/network/keys` announced it (signature verified)."""

    key_id: str
    key_seq: int
    public_key: bytes
    registration_key: bytes
    signing_key: bytes
    network_id: str

    @property
    def client(self) -> VOPRFClient:
        return VOPRFClient(self.public_key)


@dataclass(frozen=True)
class BlindedBatch:
    """The elements of one check: `keys[i]` is the applicant's key in slot `slots[i]`, the other
    slots hold random points. Blinds are secret."""

    keys: tuple[Key, ...]
    slots: tuple[int, ...]
    blinds: tuple[bytes, ...] = field(repr=False)
    blinded: tuple[bytes, ...]


@dataclass(frozen=True)
class Match:
    """One applicant key whose claimed entry opened, with the handle it opened."""

    key: Key
    handle: Handle


@dataclass
class CheckOutcome:
    response: httpx.Response
    matches: list[Match]
    entries_response: httpx.Response | None = None

    @property
    def body(self) -> dict[str, Any]:
        data = self.response.json()
        assert isinstance(data, dict)
        return data

    @property
    def check_id(self) -> str:
        return str(self.body["check_id"])

    @property
    def holder_org_ids(self) -> set[str]:
        return {m.handle.holder_org_id for m in self.matches}

    @property
    def case_ids(self) -> set[str]:
        return {m.handle.case_id for m in self.matches}

    @property
    def entry_ids(self) -> set[str]:
        return {m.handle.entry_id for m in self.matches}


def ok(response: httpx.Response, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.text
    data = response.json()
    assert isinstance(data, dict)
    return data


_ok = ok


async def fetch_key(client: httpx.AsyncClient, headers: Mapping[str, str]) -> ServerKey:
    """The newest announcement, verified with the network signing key the server shows."""
    body = _ok(await client.get("/v1/network/keys", headers=dict(headers)))
    signing = bytes.fromhex(body["signing_key"]["public_key"])
    latest = None
    for framed in body["oprf_keys"]:
        obj = signed.parse(bytes.fromhex(framed))
        obj.verify(signing, network_id=body["network_id"], type="oprf-key")
        if latest is None or obj.fields["key_seq"] > latest.fields["key_seq"]:
            latest = obj
    assert latest is not None
    f = latest.fields
    return ServerKey(
        key_id=f["key_id"],
        key_seq=f["key_seq"],
        public_key=bytes.fromhex(f["public_key"]),
        registration_key=bytes.fromhex(f["registration_key"]),
        signing_key=signing,
        network_id=body["network_id"],
    )


def random_element() -> bytes:
    """A blinded-looking element for a padding slot: HashToGroup of random bytes."""
    return hash_to_group(os.urandom(32))


def blind_keys(
    server_key: ServerKey, keys: Sequence[Key], keys_per_check: int = DEFAULT_KEYS_PER_CHECK
) -> BlindedBatch:
    """Blind the applicant's keys into random slots of exactly `keys_per_check` elements."""
    voprf = server_key.client
    keys = list(keys)[:keys_per_check]
    slots = list(range(keys_per_check))
    secrets.SystemRandom().shuffle(slots)
    chosen = slots[: len(keys)]
    blinded: list[bytes] = [random_element() for _ in range(keys_per_check)]
    blinds: list[bytes] = []
    for key, slot in zip(keys, chosen, strict=True):
        blind, element = voprf.blind(key.value)
        blinds.append(blind)
        blinded[slot] = element
    return BlindedBatch(tuple(keys), tuple(chosen), tuple(blinds), tuple(blinded))


def metadata(*, today: date, **overrides: Any) -> dict[str, Any]:
    """Case metadata the shipped policy accepts; `overrides` replace any member."""
    finding = today - timedelta(days=60)
    body: dict[str, Any] = {
        "category": "sexual_abuse",
        "child_victim": False,
        "finding": "substantiated",
        "sanction": "dismissal",
        "finding_date": finding.isoformat(),
        "legal_basis": "legitimate_interests",
        "retention_until": finding.replace(year=finding.year + 5).isoformat(),
        "mou_reference": "MoU-2026-01",
        "subject_notified_on": (finding + timedelta(days=7)).isoformat(),
    }
    body.update(overrides)
    return body


def sealed_keys_for(
    server_key: ServerKey,
    keys: Sequence[Key],
    meta: Mapping[str, Any],
    keys_per_check: int = DEFAULT_KEYS_PER_CHECK,
) -> str:
    registered = [
        sealed_keys.RegisteredKey(hash_to_group(k.value), k.kind, k.strength)
        for k in list(keys)[:keys_per_check]
    ]
    plaintext = sealed_keys.encode(sealed_keys.metadata_sha256(meta), registered, keys_per_check)
    return sealed_keys.seal(server_key.registration_key, plaintext).hex()


def case_body(
    server_key: ServerKey,
    keys: Sequence[Key],
    *,
    today: date,
    keys_per_check: int = DEFAULT_KEYS_PER_CHECK,
    **overrides: Any,
) -> dict[str, Any]:
    meta = metadata(today=today, **overrides)
    return {
        **meta,
        "key_id": server_key.key_id,
        "sealed_keys": sealed_keys_for(server_key, keys, meta, keys_per_check),
    }


async def register_person(
    client: httpx.AsyncClient,
    headers: Mapping[str, str],
    person: Person,
    *,
    today: date,
    keys_per_check: int = DEFAULT_KEYS_PER_CHECK,
    idempotency_key: str | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """The whole registration: derive_keys, HashToGroup, seal, POST. Answers the case, with its
    filter values under `"filter_values"`."""
    server_key = await fetch_key(client, headers)
    body = case_body(
        server_key, derive_keys(person), today=today, keys_per_check=keys_per_check, **overrides
    )
    extra = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    answer = _ok(await client.post("/v1/cases", headers={**headers, **extra}, json=body), 201)
    return {**answer["case"], "filter_values": answer["filter_values"]}


def consent_body(
    *,
    now: datetime,
    x25519_public: bytes | None = None,
    signing_seed: bytes | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """A `POST /v1/consents` body. The HR system's details (`applicant_ref`, `position_ref`,
    `form_sha256`, `self_declared_finding`, overridable) are sealed as the SDK seals them: to
    `x25519_public` (default: a key nobody keeps, since the server cannot tell), signed with
    `signing_seed` when given. `sealed_details` overrides the blob itself."""
    details: dict[str, Any] = {
        "applicant_ref": "APP-000123",
        "position_ref": "POS-2026-017",
        "form_sha256": hashlib.sha256(b"signed declaration form").hexdigest(),
        "self_declared_finding": False,
    }
    details.update({k: overrides.pop(k) for k in list(details) if k in overrides})
    body: dict[str, Any] = {"purpose": "recruitment", "consented_at": now.isoformat()}
    body.update(overrides)
    if "sealed_details" not in body:
        sealed = consent_details.ConsentDetails(
            **details,
            purpose=body["purpose"],
            consented_at=datetime.fromisoformat(body["consented_at"]),
        )
        public = x25519_public or bytes(nacl.public.PrivateKey.generate().public_key)
        body["sealed_details"] = consent_details.seal_details(
            sealed, public, signing_seed=signing_seed
        ).hex()
    return body


async def record_consent(
    client: httpx.AsyncClient, headers: Mapping[str, str], *, now: datetime, **overrides: Any
) -> dict[str, Any]:
    response = await client.post(
        "/v1/consents", headers=dict(headers), json=consent_body(now=now, **overrides)
    )
    return _ok(response, 201)


def build_check_request(
    server_key: ServerKey,
    consent_id: str,
    keys: Sequence[Key],
    keys_per_check: int = DEFAULT_KEYS_PER_CHECK,
) -> tuple[BlindedBatch, dict[str, Any]]:
    batch = blind_keys(server_key, keys, keys_per_check)
    body = {
        "consent_id": consent_id,
        "key_id": server_key.key_id,
        "blinded_elements": [e.hex() for e in batch.blinded],
    }
    return batch, body


def unblind_verified(
    server_key: ServerKey, batch: BlindedBatch, body: Mapping[str, Any]
) -> list[bytes]:
    """Verify the batch DLEQ proof over every slot against the announced key, then unblind the
    applicant's slots: their `P`. Raises `protocol.errors.VerifyError` on another key."""
    assert body["key_id"] == server_key.key_id
    evaluated = [bytes.fromhex(e) for e in body["evaluated_elements"]]
    server_key.client.verify_proof(list(batch.blinded), evaluated, bytes.fromhex(body["proof"]))
    return [
        unblind(blind, evaluated[slot])
        for blind, slot in zip(batch.blinds, batch.slots, strict=True)
    ]


async def fetch_filter(
    client: httpx.AsyncClient, headers: Mapping[str, str], server_key: ServerKey
) -> tuple[signed.SignedObject, set[int]]:
    response = await client.get("/v1/registry/filter", headers=dict(headers))
    assert response.status_code == 200, response.text
    header, values = rcfilter.parse_full(response.content)
    header.verify(server_key.signing_key, network_id=server_key.network_id, type="filter")
    return header, set(values)


async def claim_hits(
    client: httpx.AsyncClient,
    headers: Mapping[str, str],
    server_key: ServerKey,
    batch: BlindedBatch,
    body: Mapping[str, Any],
    consent_id: str,
    *,
    only: set[int] | None = None,
) -> tuple[httpx.Response | None, list[Match]]:
    """Claim the applicant's slots whose `prefix(P)` is in the filter (or the `only` indexes
    into `batch.keys`), and open what comes back."""
    points = unblind_verified(server_key, batch, body)
    if only is None:
        _header, values = await fetch_filter(client, headers, server_key)
        only = {i for i, p in enumerate(points) if prefix(p) in values}
    if not only:
        return None, []
    evaluated = [bytes.fromhex(e) for e in body["evaluated_elements"]]
    claims = []
    for i in sorted(only):
        slot, p = batch.slots[i], points[i]
        claims.append(
            {
                "index": slot,
                "tag": tag(p).hex(),
                "proof": prove_claim(
                    check_id=body["check_id"],
                    consent_id=consent_id,
                    index=slot,
                    tag=tag(p),
                    p=p,
                    z=evaluated[slot],
                    r=batch.blinds[i],
                ).hex(),
            }
        )
    response = await client.post(
        f"/v1/checks/{body['check_id']}/entries", headers=dict(headers), json={"claims": claims}
    )
    if response.status_code != 200:
        return response, []
    by_tag = {tag(points[i]).hex(): i for i in only}
    matches: list[Match] = []
    for entry in response.json()["entries"]:
        i = by_tag[entry["tag"]]
        handle = open_handle(points[i], bytes.fromhex(entry["sealed_handle"]))
        assert handle is not None, "an entry with our tag must open with our P"
        matches.append(Match(key=batch.keys[i], handle=handle))
    return response, matches


async def check_person(
    client: httpx.AsyncClient,
    headers: Mapping[str, str],
    consent_id: str,
    person: Person,
    *,
    keys_per_check: int = DEFAULT_KEYS_PER_CHECK,
) -> CheckOutcome:
    """The whole check; on a refusal, `matches` is empty and `response` holds the problem."""
    server_key = await fetch_key(client, headers)
    batch, body = build_check_request(server_key, consent_id, derive_keys(person), keys_per_check)
    response = await client.post("/v1/checks", headers=dict(headers), json=body)
    if response.status_code != 200:
        return CheckOutcome(response=response, matches=[])
    entries, matches = await claim_hits(
        client, headers, server_key, batch, response.json(), consent_id
    )
    return CheckOutcome(response=response, matches=matches, entries_response=entries)
