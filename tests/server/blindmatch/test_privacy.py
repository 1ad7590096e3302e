"""What the server keeps and logs holds no identifier, no key value, no `HashToGroup` of one and
no pseudonym `P`, and a check looks the same to it (and on the wire) whether or not the
applicant is registered."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from protocol.entry import hash_to_group
from protocol.identity import derive_keys
from server.all_models import Base
from server.audit.models import AuditEntry
from server.checks.models import Check
from server.context import AppContext
from server.keys import ServerKeys
from tests.blindflow import (
    build_check_request,
    check_person,
    fetch_key,
    record_consent,
    register_person,
)
from tests.conftest import MutableClock
from tests.factories import AppClient, Network
from tests.server.blindmatch.people import ALL_PEOPLE, OTHER, REGISTERED, SPELLING_VARIANTS
from tests.server.blindmatch.stored import pseudonym

pytestmark = pytest.mark.anyio


def _needles(
    people: Iterable[dict[str, object]], keys: ServerKeys | None = None
) -> tuple[set[str], set[bytes]]:
    """Text that must not appear (every field value, every name word of 4+ letters, every key
    value as text and hex) and bytes that must not appear (every key value, its `HashToGroup`
    element as a registration seals it, and, given the server's keys, its `P`), each also as
    hex."""
    texts: set[str] = set()
    raw: set[bytes] = set()
    for person in people:
        for value in person.values():
            text = str(value)
            texts.add(text.lower())
            texts.update(w.lower() for w in re.findall(r"[A-Za-z]{4,}", text))
            if re.search(r"\d{6,}", text):
                texts.add(re.sub(r"\D", "", text))  # a document number without separators
        for key in derive_keys(person):
            raw.add(key.value)
            texts.add(key.value.decode("utf-8").lower())
            texts.add(key.value.hex())
            derived = [hash_to_group(key.value)]
            if keys is not None:
                derived.append(pseudonym(keys, key))
            raw.update(derived)
            texts.update(d.hex() for d in derived)
    # Two-letter country codes ("ID") are not identifiers, and would be found inside any "org_id".
    return {t for t in texts if len(t) >= 4}, raw


def _flatten(value: Any) -> Iterable[str | bytes]:
    if value is None or isinstance(value, bool | int | float):
        return
    if isinstance(value, bytes | bytearray | memoryview):
        data = bytes(value)
        yield data
        yield data.hex()
    elif isinstance(value, str):
        yield value
    elif isinstance(value, date | datetime):
        yield value.isoformat()
    else:
        yield json.dumps(value, default=str)


def _dump_every_table(session: Session) -> list[tuple[str, str | bytes]]:
    session.expire_all()
    cells: list[tuple[str, str | bytes]] = []
    for table in Base.metadata.sorted_tables:
        for row in session.execute(select(table)).all():
            for column, value in zip(table.columns, row, strict=True):
                cells.extend((f"{table.name}.{column.name}", v) for v in _flatten(value))
    return cells


def _leaks(
    haystack: Iterable[tuple[str, str | bytes]], texts: set[str], raw: set[bytes]
) -> list[str]:
    found: list[str] = []
    for where, value in haystack:
        if isinstance(value, bytes):
            found.extend(where for needle in raw if needle in value)
            value = value.decode("latin-1")
        lowered = value.lower()
        found.extend(where for needle in texts if needle in lowered)
    return found


async def _full_flow(client: AppClient, network: Network, clock: MutableClock) -> None:
    case = await register_person(
        client, network.a_focal.headers, REGISTERED, today=clock.today(), idempotency_key="k-1"
    )
    consent = await record_consent(
        client,
        network.b_hr.headers,
        now=clock(),
        purpose="rescreening",
        max_checks=len(SPELLING_VARIANTS) + 2,
    )
    for person in [REGISTERED, *SPELLING_VARIANTS, OTHER]:
        outcome = await check_person(client, network.b_hr.headers, consent["id"], person)
        assert outcome.response.status_code == 200
    # Refusals go through the error paths too (and must not echo what they refuse).
    refused = await client.post(
        "/v1/consents",
        headers=network.b_hr.headers,
        json={"applicant_ref": str(REGISTERED["email"]), "purpose": "recruitment"},
    )
    assert refused.status_code == 422
    await client.patch(
        f"/v1/cases/{case['id']}",
        headers=network.a_focal.headers,
        json={"retention_until": clock.today().isoformat()},
    )
    await client.post(
        f"/v1/cases/{case['id']}/withdraw",
        headers=network.a_focal.headers,
        json={"reason": "appeal_upheld"},
    )


async def test_stored_rows_hold_no_identifier_no_key_value_and_no_pseudonym(
    client: AppClient, network: Network, clock: MutableClock, session: Session, ctx: AppContext
) -> None:
    await _full_flow(client, network, clock)
    # A second registration that stays active, so entry rows are in the dump.
    await register_person(client, network.a_focal.headers, REGISTERED, today=clock.today())
    cells = _dump_every_table(session)
    tables = {where.split(".")[0] for where, _ in cells}
    assert {
        "cases",
        "pseudonyms",
        "consents",
        "checks",
        "check_claims",
        "audit_entries",
        "stat_counters",
        "filter_revisions",
    } <= tables
    texts, raw = _needles(ALL_PEOPLE, ctx.keys)
    assert texts and raw
    assert _leaks(cells, texts, raw) == []


async def test_logs_hold_no_identifier_no_key_value_and_no_pseudonym(
    client: AppClient,
    network: Network,
    clock: MutableClock,
    ctx: AppContext,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    await _full_flow(client, network, clock)
    assert caplog.records, "the flow should have logged something (at least httpx requests)"
    logged: list[tuple[str, str | bytes]] = []
    for record in caplog.records:
        logged.append((record.name, record.getMessage()))
        logged.extend((record.name, repr(arg)) for arg in (record.args or ()))
        if record.exc_text:
            logged.append((record.name, record.exc_text))
    texts, raw = _needles(ALL_PEOPLE, ctx.keys)
    assert _leaks(logged, texts, raw) == []


def _shape(value: Any) -> Any:
    """JSON structure with every string replaced by its length."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shape(v) for v in value]
    if isinstance(value, str):
        return len(value)
    return type(value).__name__


async def test_matching_and_non_matching_checks_look_the_same(
    client: AppClient, network: Network, clock: MutableClock, session: Session, ctx: AppContext
) -> None:
    """A check of a registered applicant and one of a stranger: the same request size, the same
    answer shape and size, the same header, the same records. The difference is only in what
    the client finds in its filter, which the server never sees (a miss makes no further call)."""
    await register_person(client, network.a_focal.headers, REGISTERED, today=clock.today())
    consent = await record_consent(client, network.b_hr.headers, now=clock(), max_checks=2)
    server_key = await fetch_key(client, network.b_hr.headers)

    registered_keys = derive_keys(REGISTERED)
    other_keys = derive_keys(OTHER)
    assert len(registered_keys) != len(other_keys), "people with different key counts"
    _match_batch, match_body = build_check_request(server_key, consent["id"], registered_keys)
    _miss_batch, miss_body = build_check_request(server_key, consent["id"], other_keys)
    assert len(match_body["blinded_elements"]) == len(miss_body["blinded_elements"])
    assert _shape(match_body) == _shape(miss_body)

    match = await client.post("/v1/checks", headers=network.b_hr.headers, json=match_body)
    miss = await client.post("/v1/checks", headers=network.b_hr.headers, json=miss_body)
    assert match.status_code == miss.status_code == 200
    assert _shape(match.json()) == _shape(miss.json())
    assert match.json()["filter"] == miss.json()["filter"]
    assert len(match.content) == len(miss.content)
    assert dict(match.headers).keys() == dict(miss.headers).keys()
    assert match.headers["content-length"] == miss.headers["content-length"]

    # What the server recorded is the same too.
    session.expire_all()
    entries = session.scalars(
        select(AuditEntry).where(AuditEntry.action == "check.run").order_by(AuditEntry.seq)
    ).all()
    assert len(entries) == 2
    assert [e.details for e in entries] == [entries[0].details] * 2
    checks = session.scalars(select(Check)).all()
    assert {len(c.evaluated or b"") for c in checks} == {32 * ctx.policy.keys_per_check}
    assert {(c.key_seq, c.rerun_of) for c in checks} == {(ctx.keys.oprf_key_seq, None)}


async def test_a_check_of_someone_not_registered_is_one_post_and_one_filter_fetch(
    client: AppClient, network: Network, clock: MutableClock
) -> None:
    """The server hears of a non-registered applicant once: the check. (The SDK's own request
    log is pinned in tests/sdk; here the test client's calls to the app.)"""
    await register_person(client, network.a_focal.headers, REGISTERED, today=clock.today())
    consent = await record_consent(client, network.b_hr.headers, now=clock())
    sent: list[str] = []

    async def log_request(request: Any) -> None:
        sent.append(f"{request.method} {request.url.path}")

    client.event_hooks["request"].append(log_request)
    outcome = await check_person(client, network.b_hr.headers, consent["id"], OTHER)
    assert outcome.matches == [] and outcome.entries_response is None
    assert sent == ["GET /v1/network/keys", "POST /v1/checks", "GET /v1/registry/filter"]


def test_leak_detector_finds_planted_identifiers_key_values_and_pseudonyms(
    server_keys: ServerKeys,
) -> None:
    texts, raw = _needles([REGISTERED], server_keys)
    key = derive_keys(REGISTERED)[0]
    planted: list[tuple[str, str | bytes]] = [
        ("t.name", "applicant RAHMAWATI"),
        ("t.doc", "nik 3201234567890001"),
        ("t.raw", b"\x00" + key.value + b"\x00"),
        ("t.hex", "x" + key.value.hex()),
        ("t.element", b"\x01" + hash_to_group(key.value)),
        ("t.p", pseudonym(server_keys, key).hex()),
        ("t.clean", "org-a sexual_abuse 2026-01-01"),
    ]
    assert sorted(set(_leaks(planted, texts, raw))) == [
        "t.doc",
        "t.element",
        "t.hex",
        "t.name",
        "t.p",
        "t.raw",
    ]
