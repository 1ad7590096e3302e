"""The client side of the blind-match protocol, as the server tests drive it over HTTP.

This is the *test* helper: the production client is `client_sdk/`. It runs the real protocol
code (`protocol.identity.derive_keys`, `protocol.oprf.VOPRFClient`, `protocol.pseudonym`) so a
server test exercises exactly what an RFC 9497 client sends, and nothing here reaches into the
server's internals.

Registration (focal point)::

    case = await register_person(client, focal.headers, PERSON, today=clock.today())

Check (HR checker)::

    consent = await record_consent(client, hr.headers, now=clock())
    outcome = await check_person(client, hr.headers, consent["id"], PERSON_VARIANT)
    assert outcome.holder_org_ids == {org_a.id}

The lower-level steps (`fetch_key`, `blind_keys`, `evaluate_for_registration`,
`build_check_request`, `read_check_response`) are public too, for tests that tamper with one
step (a wrong key id, an identity element, a bucket out of range).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import httpx

from protocol.identity import Key, derive_keys
from protocol.oprf import VOPRFClient
from protocol.pseudonym import Handle, bucket, open_handle, tag

#: The shipped policy's bucket size; tests that change the policy pass their own.
DEFAULT_BUCKET_BITS = 12

Person = Mapping[str, object]


@dataclass(frozen=True)
class ServerKey:
    """The OPRF key as `GET /v1/oprf/key` published it, pinned for one flow."""

    key_id: str
    public_key: bytes

    @property
    def client(self) -> VOPRFClient:
        return VOPRFClient(self.public_key)


@dataclass(frozen=True)
class BlindedBatch:
    """Keys with their secret blinds and the blinded elements sent to the server."""

    keys: tuple[Key, ...]
    blinds: tuple[bytes, ...] = field(repr=False)
    blinded: tuple[bytes, ...]


@dataclass(frozen=True)
class Match:
    """One applicant key found in a bucket, with the handle it opened."""

    key: Key
    handle: Handle


@dataclass
class CheckOutcome:
    response: httpx.Response
    matches: list[Match]

    @property
    def body(self) -> dict[str, Any]:
        data = self.response.json()
        assert isinstance(data, dict)
        return data

    @property
    def holder_org_ids(self) -> set[str]:
        return {m.handle.holder_org_id for m in self.matches}

    @property
    def case_ids(self) -> set[str]:
        return {m.handle.case_id for m in self.matches}


def _ok(response: httpx.Response, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.text
    data = response.json()
    assert isinstance(data, dict)
    return data


async def fetch_key(client: httpx.AsyncClient, headers: Mapping[str, str]) -> ServerKey:
    body = _ok(await client.get("/v1/oprf/key", headers=dict(headers)))
    assert body["suite"] == "ristretto255-SHA512" and body["mode"] == "voprf"
    return ServerKey(key_id=body["key_id"], public_key=bytes.fromhex(body["public_key"]))


def blind_keys(server_key: ServerKey, keys: Sequence[Key]) -> BlindedBatch:
    voprf = server_key.client
    pairs = [voprf.blind(k.value) for k in keys]
    return BlindedBatch(
        keys=tuple(keys),
        blinds=tuple(b for b, _ in pairs),
        blinded=tuple(e for _, e in pairs),
    )


def unblind_verified(
    server_key: ServerKey, batch: BlindedBatch, body: Mapping[str, Any]
) -> list[bytes]:
    """Verify the batch DLEQ proof against the pinned key and unblind: the pseudonyms `P`.
    Raises `protocol.errors.VerifyError` if the server used another key."""
    assert body["key_id"] == server_key.key_id
    evaluated = [bytes.fromhex(e) for e in body["evaluated_elements"]]
    return server_key.client.verify_and_unblind(
        list(batch.blinds), list(batch.blinded), evaluated, bytes.fromhex(body["proof"])
    )


async def evaluate_for_registration(
    client: httpx.AsyncClient, headers: Mapping[str, str], keys: Sequence[Key]
) -> tuple[ServerKey, list[bytes]]:
    """Blind `keys`, `POST /v1/oprf/evaluate`, verify and unblind: `(key, [P, ...])`."""
    server_key = await fetch_key(client, headers)
    batch = blind_keys(server_key, keys)
    response = await client.post(
        "/v1/oprf/evaluate",
        headers=dict(headers),
        json={"purpose": "register", "blinded_elements": [e.hex() for e in batch.blinded]},
    )
    return server_key, unblind_verified(server_key, batch, _ok(response))


def pseudonyms_payload(
    keys: Sequence[Key], elements: Sequence[bytes], bucket_bits: int = DEFAULT_BUCKET_BITS
) -> list[dict[str, Any]]:
    return [
        {
            "kind": k.kind,
            "strength": k.strength.value,
            "bucket": bucket(k.value, bucket_bits),
            "element": p.hex(),
        }
        for k, p in zip(keys, elements, strict=True)
    ]


def case_body(
    key_id: str, pseudonyms: Sequence[Mapping[str, Any]], *, today: date, **overrides: Any
) -> dict[str, Any]:
    """A registration the shipped policy accepts; `overrides` replace any member."""
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
        "key_id": key_id,
        "pseudonyms": list(pseudonyms),
    }
    body.update(overrides)
    return body


async def register_person(
    client: httpx.AsyncClient,
    headers: Mapping[str, str],
    person: Person,
    *,
    today: date,
    bucket_bits: int = DEFAULT_BUCKET_BITS,
    idempotency_key: str | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """The whole registration: derive_keys, blind, evaluate, verify, unblind, bucket, POST."""
    keys = derive_keys(person)
    server_key, elements = await evaluate_for_registration(client, headers, keys)
    body = case_body(
        server_key.key_id, pseudonyms_payload(keys, elements, bucket_bits), today=today, **overrides
    )
    extra = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    response = await client.post("/v1/cases", headers={**headers, **extra}, json=body)
    return _ok(response, 201)


def consent_body(*, now: datetime, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "applicant_ref": "APP-000123",
        "purpose": "recruitment",
        "position_ref": "POS-2026-017",
        "form_sha256": hashlib.sha256(b"signed declaration form").hexdigest(),
        "self_declared_finding": False,
        "consented_at": now.isoformat(),
    }
    body.update(overrides)
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
    bucket_bits: int = DEFAULT_BUCKET_BITS,
) -> tuple[BlindedBatch, dict[str, Any]]:
    batch = blind_keys(server_key, keys)
    body = {
        "consent_id": consent_id,
        "key_id": server_key.key_id,
        "blinded_elements": [e.hex() for e in batch.blinded],
        "buckets": [bucket(k.value, bucket_bits) for k in keys],
    }
    return batch, body


def read_check_response(
    server_key: ServerKey,
    batch: BlindedBatch,
    body: Mapping[str, Any],
    bucket_bits: int = DEFAULT_BUCKET_BITS,
) -> list[Match]:
    """Verify, unblind, look each key's tag up in its bucket, open what matches."""
    elements = unblind_verified(server_key, batch, body)
    entries = {b["bucket"]: b["entries"] for b in body["buckets"]}
    matches: list[Match] = []
    for key, p in zip(batch.keys, elements, strict=True):
        wanted = tag(p).hex()
        for entry in entries[bucket(key.value, bucket_bits)]:
            if entry["tag"] != wanted:
                continue
            handle = open_handle(p, bytes.fromhex(entry["sealed_handle"]))
            assert handle is not None, "an entry with our tag must open with our P"
            matches.append(Match(key=key, handle=handle))
    return matches


async def check_person(
    client: httpx.AsyncClient,
    headers: Mapping[str, str],
    consent_id: str,
    person: Person,
    *,
    bucket_bits: int = DEFAULT_BUCKET_BITS,
) -> CheckOutcome:
    """The whole check; on a refusal, `matches` is empty and `response` holds the problem."""
    server_key = await fetch_key(client, headers)
    batch, body = build_check_request(server_key, consent_id, derive_keys(person), bucket_bits)
    response = await client.post("/v1/checks", headers=dict(headers), json=body)
    if response.status_code != 200:
        return CheckOutcome(response=response, matches=[])
    return CheckOutcome(
        response=response,
        matches=read_check_response(server_key, batch, response.json(), bucket_bits),
    )
