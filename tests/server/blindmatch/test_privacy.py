"""What the server keeps and logs holds no identifier and no key value, and a check looks the
same to it (and on the wire) whether or not the applicant is registered."""

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

from protocol.identity import derive_keys
from protocol.pseudonym import tag
from server.all_models import Base
from server.audit.models import AuditEntry
from server.checks.models import Check
from server.context import AppContext
from tests.blindflow import (
    build_check_request,
    check_person,
    fetch_key,
    read_check_response,
    record_consent,
    register_person,
    unblind_verified,
)
from tests.conftest import MutableClock
from tests.factories import AppClient, Network
from tests.server.blindmatch.people import ALL_PEOPLE, OTHER, REGISTERED, SPELLING_VARIANTS

pytestmark = pytest.mark.anyio


def _needles(people: Iterable[dict[str, object]]) -> tuple[set[str], set[bytes]]:
    """Text that must not appear (every field value, every name word of 4+ letters, every key
    value as text and hex) and bytes that must not appear (every key value)."""
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


async def test_stored_rows_hold_no_identifier_and_no_key_value(
    client: AppClient, network: Network, clock: MutableClock, session: Session
) -> None:
    await _full_flow(client, network, clock)
    # A second registration that stays active, so pseudonym rows are in the dump.
    await register_person(client, network.a_focal.headers, REGISTERED, today=clock.today())
    cells = _dump_every_table(session)
    tables = {where.split(".")[0] for where, _ in cells}
    assert {"cases", "pseudonyms", "consents", "checks", "audit_entries", "stat_counters"} <= tables
    texts, raw = _needles(ALL_PEOPLE)
    assert texts and raw
    assert _leaks(cells, texts, raw) == []


async def test_logs_hold_no_identifier_and_no_key_value(
    client: AppClient, network: Network, clock: MutableClock, caplog: pytest.LogCaptureFixture
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
    texts, raw = _needles(ALL_PEOPLE)
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
    await register_person(client, network.a_focal.headers, REGISTERED, today=clock.today())
    consent = await record_consent(client, network.b_hr.headers, now=clock())
    server_key = await fetch_key(client, network.b_hr.headers)
    bits = ctx.policy.bucket_bits

    registered_keys = derive_keys(REGISTERED)
    other_keys = derive_keys(OTHER)
    n = min(len(registered_keys), len(other_keys))
    match_batch, match_body = build_check_request(server_key, consent["id"], registered_keys[:n])
    miss_batch, miss_body = build_check_request(server_key, consent["id"], other_keys[:n])
    # Same buckets asked for, so the bucket contents are the same: only the keys differ.
    miss_body["buckets"] = match_body["buckets"]

    match = await client.post("/v1/checks", headers=network.b_hr.headers, json=match_body)
    miss = await client.post("/v1/checks", headers=network.b_hr.headers, json=miss_body)
    assert match.status_code == miss.status_code == 200
    assert read_check_response(server_key, match_batch, match.json(), bits)
    # The other person's pseudonyms verify and unblind, and none of their tags is listed.
    listed = {e["tag"] for b in miss.json()["buckets"] for e in b["entries"]}
    assert listed
    assert (
        not {tag(p).hex() for p in unblind_verified(server_key, miss_batch, miss.json())} & listed
    )

    assert _shape(match.json()) == _shape(miss.json())
    assert match.json()["buckets"] == miss.json()["buckets"]
    assert len(match.content) == len(miss.content)
    assert dict(match.headers).keys() == dict(miss.headers).keys()
    assert match.headers["content-length"] == miss.headers["content-length"]

    # What the server recorded is the same too.
    session.expire_all()
    entries = session.scalars(
        select(AuditEntry).where(AuditEntry.action == "check.run").order_by(AuditEntry.seq)
    ).all()
    assert [e.details for e in entries] == [entries[0].details] * 2
    checks = session.scalars(select(Check)).all()
    assert {c.key_count for c in checks} == {n}


def test_leak_detector_finds_planted_identifiers_and_key_values() -> None:
    texts, raw = _needles([REGISTERED])
    key = derive_keys(REGISTERED)[0]
    planted: list[tuple[str, str | bytes]] = [
        ("t.name", "applicant RAHMAWATI"),
        ("t.doc", "nik 3201234567890001"),
        ("t.raw", b"\x00" + key.value + b"\x00"),
        ("t.hex", "x" + key.value.hex()),
        ("t.clean", "org-a sexual_abuse 2026-01-01"),
    ]
    assert sorted(set(_leaks(planted, texts, raw))) == ["t.doc", "t.hex", "t.name", "t.raw"]
